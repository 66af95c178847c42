"""Ingest benchmark: 1,000,000 Segment `track` events into a fresh store.

Contenders (each into a fresh database file per run):
  a. LeadLens      <bin> ingest bench/out/track-1m.ndjson --db bench/out/leadlens.sqlite
  b. Python ref    python3 bench/ref_ingest.py bench/out/track-1m.ndjson bench/out/ref.sqlite
  c. sqlite3 CLI   sqlite3 bench/out/cli.sqlite  <  CREATE TABLE ...; .import --csv --skip 1 ...
  d. storage floor sqlite3 bench/out/floor.sqlite <  LeadLens's own events and event_property_sets
                   tables and indexes (their SQL read from the store the last LeadLens run
                   left), then the rows that run stored, copied from it (ATTACH, read-only) in
                   one transaction with LeadLens's settings (WAL, synchronous=NORMAL). What
                   SQLite alone needs to write the events in the layout the store requires: no
                   parsing, no leads, no aggregates, no scoring. Informative; not a target.

Data (untimed, cached in bench/out/, rebuilt with BENCH_REFRESH=1):
  <bin> generate --leads 120000 --seed 7 --out bench/out/gen, then the first
  1,000,000 lines of gen/events.ndjson starting with {"type":"track" go to
  track-1m.ndjson (+ the same events as track-1m.csv: user_id,event,ts_ms,message_id).
  If there are fewer, generate again with twice the leads.
  BENCH_INGEST_SOURCE=some.ndjson takes the track lines from that file instead
  of running the generator (for testing the harness without the binary).

Env: LEADLENS_BIN (default .build/release/leadlens), BENCH_RUNS (5),
BENCH_TIMEOUT (per run, s), BENCH_REFRESH, BENCH_INGEST_SOURCE,
BENCH_INGEST_EVENTS (default 1000000; smaller only for smoke tests).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from ref_ingest import row_of  # noqa: E402  (same field mapping as the reference)

N = h.env_int("BENCH_INGEST_EVENTS", 1_000_000)   # override only for smoke tests
LEADS = 120_000
SEED = 7
MAX_GENERATE = 5                 # 120k, 240k, 480k, 960k, 1.92M leads
PREFIX = b'{"type":"track"'

GEN = h.OUT / "gen"
NDJSON = h.OUT / "track-1m.ndjson"
CSV = h.OUT / "track-1m.csv"
STAMP = h.OUT / "track-1m.json"  # written last: the cache is valid iff it exists

DB_LEADLENS = h.OUT / "leadlens.sqlite"
DB_REF = h.OUT / "ref.sqlite"
DB_CLI = h.OUT / "cli.sqlite"
DB_FLOOR = h.OUT / "floor.sqlite"


class PrepError(Exception):
    def __init__(self, msg: str, exit_code: int | None = None):
        super().__init__(msg)
        self.exit_code = exit_code


def count_track(path: Path, limit: int) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(PREFIX):
                n += 1
                if n >= limit:
                    break
    return n


def generate(binary: str) -> tuple[Path, str]:
    """Run the generator until it yields >= N track events; (events file, description)."""
    leads = LEADS
    for attempt in range(1, MAX_GENERATE + 1):
        shutil.rmtree(GEN, ignore_errors=True)
        cmd = [binary, "generate", "--leads", str(leads), "--seed", str(SEED), "--out", h.rel(GEN)]
        h.log(f"  prep: {' '.join(h.rel(c) if c == binary else c for c in cmd)}")
        t0 = time.perf_counter()
        code, err = h.run_once(cmd, timeout=4 * h.default_timeout())
        if code != 0:
            raise PrepError(f"generate failed: {err or '(no stderr)'}", code)
        events = GEN / "events.ndjson"
        if not events.is_file():
            raise PrepError(f"generate wrote no {h.rel(events)}")
        n = count_track(events, N)
        h.log(f"  prep: {leads:,} leads -> {n:,}{'+' if n >= N else ''} track events "
              f"({time.perf_counter() - t0:.1f} s)")
        if n == 0:
            raise PrepError(f"no line of {h.rel(events)} starts with {PREFIX.decode()}")
        if n >= N or attempt == MAX_GENERATE:
            return events, f"generate --leads {leads} --seed {SEED}"
        leads *= 2
    raise AssertionError("unreachable")


def extract(src: Path) -> int:
    """First N track lines of src -> NDJSON + CSV (via temp files); returns the count."""
    h.log(f"  prep: extracting track events from {h.rel(src)}")
    tmp_nd, tmp_csv = NDJSON.with_suffix(".ndjson.tmp"), CSV.with_suffix(".csv.tmp")
    n = bad_ts = bad_json = 0
    with open(src, "rb") as fin, open(tmp_nd, "wb") as fnd, \
            open(tmp_csv, "w", newline="", encoding="utf-8") as fcsv:
        w = csv.writer(fcsv, lineterminator="\n")
        w.writerow(["user_id", "event", "ts_ms", "message_id"])
        for line in fin:
            if not line.startswith(PREFIX):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                bad_json += 1
                continue
            if not line.endswith(b"\n"):
                line += b"\n"
            fnd.write(line)
            try:
                user, event, ts, mid = row_of(ev)
            except (ValueError, TypeError):
                bad_ts += 1
                user, event, ts, mid = (ev.get("userId") or ev.get("anonymousId"),
                                        ev.get("event"), None, ev.get("messageId"))
            w.writerow(["" if v is None else v for v in (user, event, ts, mid)])
            n += 1
            if n >= N:
                break
    os.replace(tmp_nd, NDJSON)
    os.replace(tmp_csv, CSV)
    if bad_json:
        print(f"warning: skipped {bad_json:,} malformed JSON lines of {h.rel(src)}")
    if bad_ts:
        print(f"warning: {bad_ts:,} events with an unparsable timestamp (empty ts_ms in CSV)")
    return n


def prepare(binary: str) -> int:
    """Make sure track-1m.ndjson/.csv exist; return the number of events in them."""
    h.OUT.mkdir(parents=True, exist_ok=True)
    source = os.environ.get("BENCH_INGEST_SOURCE")
    if STAMP.is_file() and NDJSON.is_file() and CSV.is_file() \
            and not os.environ.get("BENCH_REFRESH"):
        try:
            meta = json.loads(STAMP.read_text())
            if meta.get("wanted") == N and \
                    meta.get("source_file") == (str(Path(source).resolve()) if source else None):
                h.log(f"  prep: cached {h.rel(NDJSON)} ({meta['events']:,} events; "
                      f"BENCH_REFRESH=1 rebuilds)")
                return int(meta["events"])
        except (ValueError, KeyError, OSError):
            pass
    STAMP.unlink(missing_ok=True)
    if source:
        src, how = Path(source).resolve(), f"BENCH_INGEST_SOURCE={source}"
        if not src.is_file():
            raise PrepError(f"BENCH_INGEST_SOURCE not found: {source}")
    else:
        src, how = generate(binary)
    t0 = time.perf_counter()
    n = extract(src)
    h.log(f"  prep: {n:,} events -> {h.rel(NDJSON)}, {h.rel(CSV)} ({time.perf_counter() - t0:.1f} s)")
    STAMP.write_text(json.dumps({"events": n, "wanted": N, "how": how,
                                 "source_file": str(src) if source else None,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return n


def db_count(path: Path) -> str | int:
    if not path.is_file():
        return "database file missing"
    try:
        con = sqlite3.connect(str(path))
        try:
            return con.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as e:
        return f"{type(e).__name__}: {e}"


def floor_script(store: Path) -> str | None:
    """The storage floor's sqlite3 script: the store's own event tables and indexes, then the
    rows it holds, read straight from it. None when it has none."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        ddl = [sql for (sql,) in con.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('events', 'event_property_sets') "
            "AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type = 'index', name")]
    finally:
        con.close()
    if not ddl:
        return None
    # LeadLens's connection settings (LeadStore.configuration). ORDER BY keeps SQLite from
    # copying the tables' pages whole (its INSERT ... SELECT * transfer shortcut): the rows go
    # through the B-trees, as LeadLens's inserts do.
    return "\n".join([
        "PRAGMA journal_mode = WAL;", "PRAGMA synchronous = NORMAL;", "PRAGMA cache_size = -65536;",
        "PRAGMA temp_store = MEMORY;",
        *(sql + ";" for sql in ddl),
        f"ATTACH 'file:{h.rel(store)}?mode=ro' AS source;",
        "BEGIN;",
        "INSERT INTO events SELECT * FROM source.events ORDER BY id;",
        "INSERT INTO event_property_sets SELECT * FROM source.event_property_sets ORDER BY id;",
        "COMMIT;", ""])


def ratio_text(fast: h.Result, base: h.Result) -> str:
    s = h.speedup(fast, base)
    if s is not None:
        return f"{s:.2f}×"
    down = fast if not fast.ok else base
    return f"n/a ({down.name} {'SKIPPED' if down.skipped else 'FAILED'})"


def headlines(leadlens: h.Result, ref: h.Result, cli: h.Result, floor: h.Result | None = None) -> None:
    print()
    s = h.speedup(leadlens, ref)
    verdict = "" if s is None else (" — met" if s >= 2 else " — NOT met")
    print(f"LeadLens / Python reference: {ratio_text(leadlens, ref)} (target ≥ 2×){verdict}")
    rss = leadlens.rss_mib
    if rss is not None:
        verdict = " — met" if rss < 256 else " — NOT met"
        print(f"LeadLens peak RSS: {rss:.0f} MiB (target < 256 MiB){verdict}")
    else:
        print(f"LeadLens peak RSS: n/a ({leadlens.name} FAILED) (target < 256 MiB)")
    print(f"LeadLens / sqlite3 .import: {ratio_text(leadlens, cli)}")
    if floor is not None:
        print(f"LeadLens / storage floor: {ratio_text(leadlens, floor)}", end="")
        if floor.ok and ref.ok:
            print(f" (the 2× target allows {ref.median / 2:.2f} s; SQLite alone writes the events LeadLens "
                  f"stores, in its layout, in {floor.median:.2f} s)")
        else:
            print()


def main() -> None:
    binary = h.leadlens_bin()
    print(f"== ingest: {N:,} Segment track events into a fresh SQLite store "
          f"({h.default_runs()} run{'s' if h.default_runs() != 1 else ''} each) ==", flush=True)
    names = ("LeadLens ingest", "Python reference", "sqlite3 .import (CSV)")
    try:
        n = prepare(binary)
    except PrepError as e:
        print(f"data prep FAILED: {e}")
        results = [h.failed(names[0], str(e), e.exit_code),
                   h.skipped(names[1], "no input data"),
                   h.skipped(names[2], "no input data")]
        h.print_table(results, items_label="events/s")
        headlines(*results)
        return
    if n < N:
        print(f"warning: only {n:,} track events available (wanted {N:,}); measuring those")
    mib = lambda p: p.stat().st_size / 2**20  # noqa: E731
    print(f"input: {h.rel(NDJSON)} ({n:,} events, {mib(NDJSON):.0f} MiB), "
          f"{h.rel(CSV)} ({mib(CSV):.0f} MiB)", flush=True)

    nd = h.rel(NDJSON)
    leadlens = h.measure(
        names[0], [binary, "ingest", nd, "--db", h.rel(DB_LEADLENS)],
        setup=lambda: h.remove_db(DB_LEADLENS), items=n, ok_codes=(0, 1))
    if leadlens.ok and any(leadlens.codes):
        leadlens.notes = f"exit 1 on {sum(1 for c in leadlens.codes if c)} run(s)"
    ref = h.measure(
        names[1], [sys.executable, h.rel(h.BENCH_DIR / "ref_ingest.py"), nd, h.rel(DB_REF)],
        setup=lambda: h.remove_db(DB_REF), items=n, notes="json + executemany, 10k/txn")
    cli = h.measure(
        names[2], ["sqlite3", "-bail", h.rel(DB_CLI)],
        stdin=("CREATE TABLE events(user_id TEXT, event TEXT, ts INTEGER, message_id TEXT);\n"
               f".import --csv --skip 1 {h.rel(CSV)} events\n"),
        setup=lambda: h.remove_db(DB_CLI), items=n, notes="pre-flattened CSV")

    floor_name = "storage floor (sqlite3)"
    script = floor_script(DB_LEADLENS) if leadlens.ok and DB_LEADLENS.is_file() else None
    if script is None:
        floor = h.skipped(floor_name, "no LeadLens store to take the rows from")
    else:
        floor = h.measure(
            floor_name, ["sqlite3", "-bail", h.rel(DB_FLOOR)], stdin=script,
            setup=lambda: h.remove_db(DB_FLOOR), items=n, notes="LeadLens's event rows, tables, indexes")

    h.print_table([leadlens, ref, cli, floor], items_label="events/s")
    headlines(leadlens, ref, cli, floor)

    # Sanity check on the database left by the last run of each contender.
    for res, db in ((leadlens, DB_LEADLENS), (ref, DB_REF), (cli, DB_CLI), (floor, DB_FLOOR)):
        if not res.ok:
            continue
        got = db_count(db)
        if got != n:
            shown = f"{got:,} events" if isinstance(got, int) else got
            print(f"warning: {res.name}: {h.rel(db)} holds {shown}, expected {n:,}")
    sys.stdout.flush()


if __name__ == "__main__":
    h.main_guard(main)
