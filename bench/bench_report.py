"""Report benchmark: a full report (summary.html + every CSV) over a store of >= 1M leads.

  <bin> report --db STORE --period all --out bench/out/report/reports --keep 1
vs the Python peer bench/ref_report.py (sqlite3 + csv: the same aggregates, top-50 query and
CSV files, no HTML, no explanations), run interleaved round by round. Targets from issue 5:
report time <= 10 s and peak RSS <= 300 MiB for 1M leads.

Data (bench/out/report/, git-ignored): the first of
  bench/out/report/big-*.sqlite            a copy of a scored 1M+ store, if one was put there
  bench/out/scoring/big-*-s7/store.sqlite  the scoring benchmark's store (copied, not used in place)
otherwise generate --leads 1000000 --seed 7, ingest --no-score, score --all (several minutes).
The first report run migrates a copied store; it is untimed.

Env: LEADLENS_BIN, BENCH_TIMEOUT as for every benchmark; BENCH_REPORT_RUNS (default 3);
BENCH_REPORT_LEADS (1000000) when a store has to be generated.
"""

from __future__ import annotations

import csv
import glob
import json
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

RUNS = h.env_int("BENCH_REPORT_RUNS", 3)
LEADS = h.env_int("BENCH_REPORT_LEADS", 1_000_000)
TARGET_SECONDS = 10.0
TARGET_RSS_MIB = 300.0

SCRATCH = h.OUT / "report"
OUT_LEADLENS = SCRATCH / "reports"
OUT_PEER = SCRATCH / "peer"


def find_store(binary: str) -> Path:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    mine = sorted(glob.glob(str(SCRATCH / "big-*.sqlite")))
    if mine and (stale := h.stale_store(binary, mine[0])):
        h.log(f"rebuilding {h.rel(mine[0])}: {stale}")
        h.remove_db(mine[0])
        mine = []
    if mine:
        return Path(mine[0])
    scoring = [p for p in sorted(glob.glob(str(h.OUT / "scoring" / "big-*-s7" / "store.sqlite")))
               if not h.stale_store(binary, p)]
    target = SCRATCH / f"big-{LEADS}.sqlite"
    if scoring:
        h.log(f"copying {h.rel(scoring[0])} to {h.rel(target)}")
        shutil.copyfile(scoring[0], target)
        return target
    gen = SCRATCH / f"gen-{LEADS}"
    steps = [
        [binary, "generate", "--leads", str(LEADS), "--seed", "7", "--as-of", "2026-11-01", "--out", str(gen)],
        [binary, "ingest", str(gen / "leads.csv"), str(gen / "events.ndjson"), "--db", str(target), "--no-score"],
        [binary, "score", "--all", "--db", str(target), "--models", str(h.ROOT / "models")],
    ]
    for step in steps:
        h.log("  " + " ".join(step[:3]) + " …")
        code, last = h.run_once(step)
        if code != 0:
            raise RuntimeError(f"{step[1]} failed ({code}): {last}")
    return target


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def compare(store: Path) -> str:
    """Whether LeadLens and the peer agree on the numbers (counts exactly, rates to 1e-9)."""
    latest = json.loads((OUT_LEADLENS / "latest.json").read_text())
    ours = OUT_LEADLENS / latest["id"]
    problems = []
    for name, key in [("by_source.csv", "source"), ("by_status.csv", "status"), ("score_buckets.csv", "min_score")]:
        a = {r[key]: r for r in read_csv(ours / name)}
        b = {r[key]: r for r in read_csv(OUT_PEER / name)}
        if a.keys() != b.keys():
            problems.append(f"{name}: different rows")
            continue
        for k in a:
            for col, va in a[k].items():
                vb = b[k][col]
                if va == vb:
                    continue
                try:
                    if abs(float(va) - float(vb)) <= 1e-9 * max(1.0, abs(float(vb))):
                        continue
                except ValueError:
                    pass
                problems.append(f"{name} {k} {col}: {va} vs {vb}")
    ours_rows = json.loads((ours / "index.json").read_text())
    leads_rows = next(f["rows"] for f in ours_rows["files"] if f["name"] == "leads.csv")
    peer = json.loads((OUT_PEER / "index.json").read_text())
    if leads_rows != peer["rows"]:
        problems.append(f"leads.csv rows {leads_rows} vs {peer['rows']}")
    return "numbers agree" if not problems else "DISAGREE: " + "; ".join(problems[:3])


def main() -> None:
    binary = h.leadlens_bin()
    print(f"== report: summary.html + CSVs over a 1M+ lead store ({RUNS} runs each, interleaved) ==", flush=True)
    try:
        store = find_store(binary)
    except Exception as e:  # noqa: BLE001
        h.print_table([h.failed("LeadLens report", f"data prep: {e}"), h.skipped("Python peer", "no store")])
        return
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        leads = db.execute("SELECT count(*) FROM leads").fetchone()[0]
    h.log(f"store {h.rel(store)}: {leads:,} leads; warm-up run (migrates a copied store) …")
    ours_cmd = [binary, "report", "--db", str(store), "--period", "all", "--out", str(OUT_LEADLENS), "--keep", "1"]
    peer_cmd = [sys.executable, str(h.BENCH_DIR / "ref_report.py"), str(store), str(OUT_PEER)]
    h.run_once(ours_cmd)
    h.run_once(peer_cmd)

    ours = h.Result("LeadLens report (html+csv)", ours_cmd, items=leads)
    peer = h.Result("Python peer (csv, no html)", peer_cmd, items=leads)
    for _ in range(RUNS):  # interleaved, so both see the same machine load
        for acc in (ours, peer):
            r = h.measure(acc.name, acc.cmd, runs=1, items=leads)
            acc.times += r.times
            acc.rss_kib += r.rss_kib
            if not r.ok:
                acc.ok, acc.exit_code, acc.error = False, r.exit_code, r.error
    ours.notes = compare(store) if ours.ok and peer.ok else ""
    h.print_table([ours, peer], title=f"report over {leads:,} leads", items_label="leads/s")
    if ours.ok and ours.median is not None:
        verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
        print(f"target: ≤ {TARGET_SECONDS:g} s → median {ours.median:.2f} s {verdict(ours.median <= TARGET_SECONDS)}; "
              f"≤ {TARGET_RSS_MIB:g} MiB → {ours.rss_mib:.0f} MiB {verdict(ours.rss_mib <= TARGET_RSS_MIB)}")
        speed = h.speedup(ours, peer)
        if speed:
            print(f"LeadLens vs peer: {speed:.2f}× the peer's speed (peer does no HTML and no explanations)")


if __name__ == "__main__":
    h.main_guard(main)
