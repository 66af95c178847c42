"""Plain Python reference ingester for bench_ingest.py.

    python3 bench/ref_ingest.py EVENTS.ndjson OUT.sqlite

json.loads per line, then sqlite3 executemany into
events(user_id TEXT, event TEXT, ts INTEGER, message_id TEXT) in batches of
10,000 rows, one transaction per batch; default sqlite3 settings (rollback
journal, synchronous=FULL).  Only Segment `track` events are kept; user_id is
userId (falling back to anonymousId); ts is the ISO-8601 `timestamp` as unix
milliseconds.  Malformed lines are skipped and counted on stderr.
"""

import json
import sqlite3
import sys
from datetime import datetime, timedelta, timezone

BATCH = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)


def iso_to_ms(s):
    """'2026-03-04T12:34:56.789Z' -> 1772627696789 (exact integer ms, UTC if naive)."""
    if not s:
        return None
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // ONE_MS


def row_of(ev):
    """(user_id, event, ts_ms, message_id) for a Segment track event dict."""
    return (ev.get("userId") or ev.get("anonymousId"), ev.get("event"),
            iso_to_ms(ev.get("timestamp")), ev.get("messageId"))


def main(argv):
    if len(argv) != 3:
        print("usage: ref_ingest.py EVENTS.ndjson OUT.sqlite", file=sys.stderr)
        return 2
    src, db = argv[1], argv[2]
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS events"
                "(user_id TEXT, event TEXT, ts INTEGER, message_id TEXT)")
    con.commit()
    insert = "INSERT INTO events(user_id, event, ts, message_id) VALUES (?, ?, ?, ?)"
    batch, n, bad = [], 0, 0
    with open(src, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                if ev.get("type") != "track":
                    continue
                batch.append(row_of(ev))
            except (ValueError, TypeError, AttributeError):
                bad += 1
                continue
            if len(batch) >= BATCH:
                con.executemany(insert, batch)   # implicit BEGIN
                con.commit()
                n += len(batch)
                batch.clear()
    if batch:
        con.executemany(insert, batch)
        n += len(batch)
    con.commit()
    con.close()
    print(f"ref_ingest: {n} events" + (f", {bad} malformed lines skipped" if bad else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
