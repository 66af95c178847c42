"""Run LeadLens benchmarks:  python3 bench/run.py [NAME ...]

Without arguments runs every bench/bench_*.py in name order; with arguments
only those named (`ingest`, `bench_ingest` or `bench_ingest.py`).  Prints a
machine header first.  Always exits 0: benchmarks report, they never fail the
build (Ctrl-C still aborts with 130).
"""

from __future__ import annotations

import glob
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def _cmd(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=10)
        return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return val.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def blas() -> str:
    cands = ["/usr/lib/x86_64-linux-gnu/libblas.so.3"] + sorted(glob.glob("/usr/lib/*/libblas.so.3"))
    for p in cands:
        if os.path.exists(p):
            return f"{p} -> {os.path.realpath(p)}"
    return "libblas.so.3 not found"


def header() -> None:
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 0
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    commit = _cmd(["git", "rev-parse", "--short", "HEAD"]) or "no commit"
    dirty = " (+ uncommitted changes)" if _cmd(["git", "status", "--porcelain"]) else ""
    binary = os.environ.get("LEADLENS_BIN", ".build/release/leadlens")
    print("=" * 78)
    print(f"LeadLens benchmarks  {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    print(f"machine : {platform.node()}  {platform.system()} {platform.release()} {platform.machine()}")
    print(f"cpu     : {cpu_model()}  (nproc {ncpu}; load avg {load})")
    print(f"blas    : {blas()}")
    print(f"tools   : python {platform.python_version()}; "
          f"sqlite3 CLI {(_cmd(['sqlite3', '--version']).split() or ['missing'])[0]}")
    print(f"binary  : {binary}{'' if (ROOT / binary).exists() else '  (MISSING)'}")
    print(f"source  : {commit}{dirty}")
    print(f"runs    : BENCH_RUNS={os.environ.get('BENCH_RUNS', '5')} per contender; "
          "figures are medians of whole-process runs")
    print("=" * 78, flush=True)


def select(args: list[str]) -> list[Path]:
    scripts = sorted(BENCH.glob("bench_*.py"))
    if not args:
        return scripts
    by_name = {p.stem.removeprefix("bench_"): p for p in scripts}
    chosen = []
    for a in args:
        key = Path(a).name.removesuffix(".py").removeprefix("bench_")
        if key in by_name:
            chosen.append(by_name[key])
        else:
            print(f"run.py: no benchmark named {a!r} (have: {', '.join(by_name) or 'none'})")
    return chosen


def main() -> int:
    header()
    summary = []
    for script in select(sys.argv[1:]):
        print(f"\n### {script.name}", flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.call([sys.executable, "-u", str(script)], cwd=ROOT)
        except OSError as e:
            rc = f"could not start: {e}"
        status = "ok" if rc == 0 else f"exited {rc} (ignored)"
        summary.append(f"{script.name}: {status}, {time.perf_counter() - t0:.0f} s")
    if summary:
        print("\n" + "\n".join(summary))
    return 0


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\nrun.py: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - never fail the build
        print(f"run.py: error: {e}", file=sys.stderr)
    sys.exit(0)
