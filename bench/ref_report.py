"""Peer for the report benchmark: the report's numbers and CSV files in Python + sqlite3.

  python3 bench/ref_report.py STORE.sqlite OUT_DIR

Computes what `leadlens report --period all --format csv` computes, the way a competent Python
script would: one GROUP BY over (status, source, score bucket) for every breakdown, a GROUP BY
per UTC day, the top 50 open leads, and leads.csv streamed from a cursor with the csv module
(RFC 4180, CRLF). No HTML and no per-lead explanations: LeadLens does that work on top.
Standard library only.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

CONVERTED = {"converted"}
CLOSED = CONVERTED | {"lost", "closed", "disqualified", "unqualified"}
DAY_MS = 86_400_000


def iso(ms):
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    store, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    now_ms = int(time.time() * 1000)
    lo, hi = db.execute("SELECT min(created_at), max(created_at) FROM leads").fetchone()
    start, until = (lo or now_ms - DAY_MS), max(now_ms, (hi or 0) + 1)
    where, args = "created_at >= ? AND created_at < ?", (start, until)

    # The cube, then every breakdown summed from it.
    sources = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])   # count, converted, scored, score sum, p sum
    statuses = defaultdict(lambda: [0, 0, 0.0])           # count, scored, score sum
    buckets = [[0, 0] for _ in range(10)]                 # count, converted
    for status, source, bucket, n, score_sum, p_sum in db.execute(f"""
            SELECT status, source, CASE WHEN score IS NULL THEN -1 WHEN score >= 90 THEN 9 ELSE score / 10 END,
                   count(*), total(score), total(probability)
            FROM leads WHERE {where} GROUP BY 1, 2, 3""", args):
        won = n if status in CONVERTED else 0
        scored = n if bucket >= 0 else 0
        s = sources[source]
        s[0] += n; s[1] += won; s[2] += scored; s[3] += score_sum; s[4] += p_sum
        t = statuses[status]
        t[0] += n; t[1] += scored; t[2] += score_sum
        if bucket >= 0:
            buckets[bucket][0] += n; buckets[bucket][1] += won
    total = sum(s[0] for s in sources.values())

    with open(out / "by_source.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "leads", "converted", "conversion_rate", "average_score", "expected_conversions"])
        for source, s in sorted(sources.items(), key=lambda kv: (-kv[1][0], kv[0] or "")):
            w.writerow([source or "", s[0], s[1], s[1] / s[0], s[3] / s[2] if s[2] else "", s[4]])
    with open(out / "by_status.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["status", "leads", "share", "average_score"])
        for status, t in sorted(statuses.items()):
            w.writerow([status, t[0], t[0] / total, t[2] / t[1] if t[1] else ""])
    with open(out / "score_buckets.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["min_score", "max_score", "leads", "converted", "conversion_rate"])
        for i, (n, won) in enumerate(buckets):
            w.writerow([i * 10, 100 if i == 9 else i * 10 + 9, n, won, won / n if n else 0])
    daily = dict(db.execute(f"SELECT created_at / {DAY_MS}, count(*) FROM leads WHERE {where} GROUP BY 1", args))
    with open(out / "daily.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["date", "new_leads"])
        for day in range(start // DAY_MS, (until - 1) // DAY_MS + 1):
            w.writerow([datetime.fromtimestamp(day * 86400, tz=timezone.utc).strftime("%Y-%m-%d"), daily.get(day, 0)])
    marks = ",".join("?" * len(CLOSED))
    top = db.execute(f"""SELECT id FROM leads WHERE {where} AND score IS NOT NULL AND status NOT IN ({marks})
                         ORDER BY score DESC, probability DESC, id LIMIT 50""", args + tuple(sorted(CLOSED))).fetchall()

    with open(out / "leads.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "external_id", "first_name", "last_name", "email", "company", "source", "status", "score",
                    "probability", "model_version", "assigned_to", "created_at", "last_activity_at", "updated_at"])
        rows = 0
        for r in db.execute(f"""SELECT id, external_id, first_name, last_name, email, company, source, status, score,
                                       probability, model_version, assigned_to, created_at, last_activity_at, updated_at
                                FROM leads WHERE {where} ORDER BY id""", args):
            w.writerow(list(r[:12]) + [iso(r[12]), iso(r[13]), iso(r[14])])
            rows += 1
    json.dump({"leads": total, "rows": rows, "top": [t[0] for t in top]}, open(out / "index.json", "w"))


if __name__ == "__main__":
    main()
