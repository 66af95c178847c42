"""Shared benchmark harness for LeadLens (standard library only).

Every bench_*.py script uses this module to

  * run a command N times (env BENCH_RUNS, default 5), each as its own child
    process, timing the whole process with time.perf_counter() and taking its
    peak RSS from os.wait4() (ru_maxrss, KiB on Linux);
  * run an untimed `setup` callable before each run (e.g. delete a database);
  * summarise: median / min / max wall time, median peak RSS;
  * print one aligned table, a noise hint (spread of the runs) and the RSS
    floor of the spawn path.

Benchmarks never fail the build: a command that exits with a status outside
`ok_codes`, cannot be started, or times out is reported as FAILED (exit code +
last stderr line) and the script carries on; `main_guard` makes a script exit
0 even when it raises.

Peak RSS caveat: on Linux a child's ru_maxrss is max(its own peak, the RSS of
the address space it replaced at exec()).  With vfork/posix_spawn the latter
is the *parent's* lifetime high-water mark; with a real fork() it is the
parent's current anonymous RSS.  We force fork() (see _USE_VFORK below) and
keep the harness process lean, so figures have a small floor (~10 MiB for a
CPython parent): a program peaking below it is reported at the floor, one
peaking above it is reported exactly.  `rss_floor_mib()` measures the floor;
`print_table()` prints it and shows floor-level figures as "≤ floor".
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

# fork() instead of vfork(): the child's ru_maxrss then starts from the
# parent's *current* anonymous RSS rather than the parent's lifetime peak.
subprocess._USE_VFORK = False  # type: ignore[attr-defined]

try:  # tables use "×", "–"; never crash on a non-UTF-8 stdout
    sys.stdout.reconfigure(errors="replace")  # type: ignore[attr-defined]
    sys.stderr.reconfigure(errors="replace")  # type: ignore[attr-defined]
except (AttributeError, ValueError):
    pass

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent          # repository root; commands run with cwd=ROOT
OUT = BENCH_DIR / "out"          # git-ignored scratch/cache directory


def env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def default_runs() -> int:
    return env_int("BENCH_RUNS", 5)


def default_timeout() -> float:
    """Per-run time limit in seconds (env BENCH_TIMEOUT, default 1800)."""
    return float(env_int("BENCH_TIMEOUT", 1800))


def leadlens_bin() -> str:
    """Path of the LeadLens binary: env LEADLENS_BIN, default .build/release/leadlens."""
    p = Path(os.environ.get("LEADLENS_BIN", ".build/release/leadlens"))
    return str(p if p.is_absolute() else ROOT / p)


def rel(p: os.PathLike | str) -> str:
    """Path relative to ROOT when possible (commands run with cwd=ROOT)."""
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def remove_db(path: os.PathLike | str) -> None:
    """Delete an SQLite database and its -wal/-shm/-journal side files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def store_layout(path: os.PathLike | str) -> dict:
    """What decides whether a cached store stands for one this build writes: the page size and
    the schema migrations applied."""
    import sqlite3
    con = sqlite3.connect(path)
    try:
        return {"page_size": con.execute("PRAGMA page_size").fetchone()[0],
                "migrations": [r[0] for r in con.execute("SELECT identifier FROM grdb_migrations ORDER BY rowid")]}
    finally:
        con.close()


def stale_store(binary: str, path: os.PathLike | str) -> str | None:
    """Why the cached store at `path` differs from a new store of this build, or None when it
    does not (then timing it measures this build, with no migration at start)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        empty = os.path.join(tmp, "empty.sqlite")
        code, _, _ = spawn([binary, "keys", "list", "--db", empty], timeout=120)
        if code != 0:
            return f"{binary} keys list failed ({code})"
        wanted = store_layout(empty)
    try:
        cached = store_layout(path)
    except Exception as e:  # noqa: BLE001  (any unreadable cache is rebuilt)
        return f"unreadable: {e}"
    if cached == wanted:
        return None
    return (f"it has {cached['page_size']} B pages and {len(cached['migrations'])} migrations, "
            f"this build writes {wanted['page_size']} B and {len(wanted['migrations'])}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Running commands


@dataclass
class Result:
    name: str
    cmd: list[str]
    items: int | None = None          # work items per run, for items/s
    notes: str = ""
    times: list[float] = field(default_factory=list)   # seconds, successful runs
    rss_kib: list[int] = field(default_factory=list)   # peak RSS per run
    ok: bool = True
    exit_code: int | None = None      # of the failing run
    error: str = ""                   # last stderr line / reason
    skipped: bool = False             # not run at all (see skipped())
    codes: list[int] = field(default_factory=list)     # exit status of each good run

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.ok and self.times else None

    @property
    def tmin(self) -> float | None:
        return min(self.times) if self.ok and self.times else None

    @property
    def tmax(self) -> float | None:
        return max(self.times) if self.ok and self.times else None

    @property
    def rss_mib(self) -> float | None:
        return statistics.median(self.rss_kib) / 1024 if self.ok and self.rss_kib else None

    @property
    def items_per_s(self) -> float | None:
        m = self.median
        return self.items / m if self.items and m else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median, the noise hint."""
        m = self.median
        return (self.tmax - self.tmin) / m if m else None


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:200] if lines else ""


def _describe_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def spawn(cmd: Sequence[str], *, stdin_path: str | None = None, stdout_path: str | None = None,
          stderr_path: str | None = None, cwd: os.PathLike | str | None = None,
          env: dict | None = None, timeout: float | None = None) -> tuple[int, float, int]:
    """Run `cmd` once as a child; return (exit code, wall seconds, peak RSS KiB).

    The exit code is negative for a signal (Popen convention).  Raises OSError
    when the program cannot be started.  The child gets its own session so a
    timeout kills its whole process group.
    """
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdin=stdin, stdout=stdout, stderr=stderr,
                                cwd=cwd if cwd is not None else ROOT, env=env,
                                start_new_session=True)
        timer = None
        if timeout:
            def _kill(pid=proc.pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            timer = threading.Timer(timeout, _kill)
            timer.daemon = True
            timer.start()
        try:
            while True:
                try:
                    _, status, ru = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:
                    continue
                except KeyboardInterrupt:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    os.wait4(proc.pid, 0)
                    proc.returncode = -signal.SIGKILL
                    raise
            elapsed = time.perf_counter() - t0
        finally:
            if timer is not None:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by us, tell Popen
        return proc.returncode, elapsed, ru.ru_maxrss
    finally:
        for f in (stdin, stdout, stderr):
            if hasattr(f, "close"):
                f.close()


def measure(name: str, cmd: Sequence[str], *, runs: int | None = None,
            setup: Callable[[], None] | None = None, items: int | None = None,
            ok_codes: Sequence[int] = (0,), stdin: bytes | str | None = None,
            stdout_path: str | None = None, cwd: os.PathLike | str | None = None,
            env: dict | None = None, timeout: float | None = None, notes: str = "",
            sync: bool = True) -> Result:
    """Run `cmd` `runs` times and collect wall time and peak RSS of each run.

    setup   -- untimed callable run before every run (e.g. remove_db).
    items   -- work items per run (events, rows, requests) for the items/s column.
    ok_codes-- exit statuses counted as success; anything else (or a start
               failure / timeout) stops the series and marks the result FAILED.
    stdin   -- bytes/str fed to the child on stdin (via a temp file).
    sync    -- os.sync() after setup, untimed, so dirty pages left by the
               previous run are not flushed during the next timed one.
    """
    runs = runs or default_runs()
    timeout = default_timeout() if timeout is None else timeout
    res = Result(name=name, cmd=[str(c) for c in cmd], items=items, notes=notes)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stdin_path = None
        if stdin is not None:
            stdin_path = os.path.join(tmp, "stdin")
            with open(stdin_path, "wb") as f:
                f.write(stdin.encode() if isinstance(stdin, str) else stdin)
        err_path = os.path.join(tmp, "stderr")
        for i in range(1, runs + 1):
            try:
                if setup is not None:
                    setup()
                if sync:
                    os.sync()
            except Exception as e:  # noqa: BLE001 - reported, never raised
                res.ok, res.error = False, f"setup failed: {type(e).__name__}: {e}"
                break
            try:
                code, secs, rss = spawn(res.cmd, stdin_path=stdin_path, stdout_path=stdout_path,
                                        stderr_path=err_path, cwd=cwd, env=env, timeout=timeout)
            except FileNotFoundError:
                res.ok, res.exit_code, res.error = False, 127, f"not found: {res.cmd[0]}"
                break
            except PermissionError:
                res.ok, res.exit_code, res.error = False, 126, f"not executable: {res.cmd[0]}"
                break
            except OSError as e:
                res.ok, res.exit_code, res.error = False, 126, f"cannot start: {e}"
                break
            if code not in ok_codes:
                res.ok, res.exit_code = False, code
                last = _last_line(err_path)
                if code == -signal.SIGKILL and secs >= timeout:
                    last = f"timeout after {timeout:g} s"
                res.error = last or "(no stderr)"
                break
            res.times.append(secs)
            res.rss_kib.append(rss)
            res.codes.append(code)
            log(f"  {name}: run {i}/{runs} {secs:8.3f} s  {rss / 1024:7.1f} MiB"
                + (f"  (exit {code})" if code else ""))
        if not res.ok:
            status = f" ({_describe_status(res.exit_code)})" if res.exit_code is not None else ""
            log(f"  {name}: run {len(res.times) + 1}/{runs} FAILED{status}: {res.error}")
    return res


def failed(name: str, reason: str, exit_code: int | None = None, notes: str = "") -> Result:
    """A FAILED row without running anything (e.g. data preparation failed)."""
    return Result(name=name, cmd=[], ok=False, exit_code=exit_code, error=reason, notes=notes)


def skipped(name: str, reason: str, notes: str = "") -> Result:
    """A SKIPPED row: the contender could not be run (e.g. no input data)."""
    return Result(name=name, cmd=[], ok=False, error=reason, skipped=True, notes=notes)


def run_once(cmd: Sequence[str], *, cwd: os.PathLike | str | None = None,
             timeout: float | None = None, env: dict | None = None) -> tuple[int, str]:
    """Untimed helper for data preparation: (exit code, last stderr line).

    Output goes to a temp file; the last stderr line explains failures.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        err = os.path.join(tmp, "stderr")
        try:
            code, _, _ = spawn(cmd, stderr_path=err, cwd=cwd, env=env, timeout=timeout)
        except FileNotFoundError:
            return 127, f"not found: {cmd[0]}"
        except PermissionError:
            return 126, f"not executable: {cmd[0]}"
        except OSError as e:
            return 126, f"cannot start: {e}"
        return code, _last_line(err)


_floor: float | None = None


def rss_floor_mib() -> float:
    """Peak RSS reported for `true` spawned from this process (MiB): the
    constant every figure includes (see module docstring)."""
    global _floor
    if _floor is None:
        try:
            _, _, rss = spawn(["true"])
            _floor = rss / 1024
        except OSError:
            _floor = 0.0
    return _floor


# --------------------------------------------------------------------------
# Reporting


def speedup(fast: Result, base: Result) -> float | None:
    """How many times faster `fast` is than `base` (ratio of median times)."""
    if fast.median and base.median:
        return base.median / fast.median
    return None


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def print_table(results: Sequence[Result], title: str = "", items_label: str = "items/s") -> None:
    runs = max((len(r.times) for r in results), default=0)
    header = ["name", "median s", "min–max s", items_label, "peak RSS MiB", "notes"]
    floor = rss_floor_mib()
    rows = []
    for r in results:
        if r.ok and r.times:
            rss = f"{r.rss_mib:.1f}" if r.rss_mib > floor + 0.25 else f"≤{floor:.1f}"
            rows.append([r.name, f"{r.median:.3f}", f"{r.tmin:.3f}–{r.tmax:.3f}",
                         _fmt_rate(r.items_per_s), rss, r.notes])
        else:
            why = _describe_status(r.exit_code) if r.exit_code is not None else ""
            note = f"{why}: {r.error}" if why and r.error else (why or r.error)
            if r.notes:
                note = f"{note}; {r.notes}"
            rows.append([r.name, "SKIPPED" if r.skipped else "FAILED", "", "", "", note])
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header) - 1)]
    right = {1, 2, 3, 4}

    def line(cells):
        out = [str(c).rjust(w) if i in right else str(c).ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out + [str(cells[-1])]).rstrip()

    print()
    if title:
        print(title)
    print(line(header))
    print(line(["-" * w for w in widths] + ["-" * 5]))
    for row in rows:
        print(line(row))
    spreads = [f"{r.name} {r.spread * 100:.1f}%" for r in results if r.spread is not None]
    if runs < 2 and spreads:
        print("noise: 1 run each, no spread to judge by (BENCH_RUNS>=3 recommended)")
    elif spreads:
        print(f"noise: {runs} runs each; spread (max−min)/median: " + ", ".join(spreads)
              + "  (>10% = noisy machine, compare medians with care)")
    print(f"time: whole-process wall time incl. startup; peak RSS: ru_maxrss from wait4, "
          f"floor {floor:.1f} MiB (what `true` reports when spawned the same way)")
    sys.stdout.flush()


def main_guard(main: Callable[[], None]) -> None:
    """Run a benchmark's main(); whatever happens, exit 0 (except Ctrl-C)."""
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print(f"{Path(sys.argv[0]).name}: benchmark ERROR (reported, not fatal)", flush=True)
    sys.stdout.flush()
    sys.exit(0)


class Figures:
    """The closing table of a benchmark: sections, and figure rows of
    (figure, value, target, result, notes).  The last line counts each result word
    (e.g. "3 met, 2 MISSED")."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[list[str]] = []

    def section(self, title: str) -> None:
        self.rows.append([title])

    def add(self, figure: str, value: str, target: str = "", result: str = "", notes: str = "") -> None:
        self.rows.append(["", figure, value, target, result, notes])

    def print(self) -> None:
        header = ["figure", "value", "target", "result", "notes"]
        body = [r[1:] for r in self.rows if len(r) > 1]
        widths = [max(len(str(x[i])) for x in body + [header]) for i in range(4)]

        def line(cells):
            return "  ".join([str(cells[0]).ljust(widths[0]), str(cells[1]).rjust(widths[1]),
                              str(cells[2]).ljust(widths[2]), str(cells[3]).ljust(widths[3]),
                              str(cells[4])]).rstrip()

        print()
        print(f"== {self.title}: every figure, its target and the result ==")
        print(line(header))
        print(line(["-" * w for w in widths] + ["-----"]))
        for r in self.rows:
            print(r[0] if len(r) == 1 else line(r[1:]))
        counts: dict[str, int] = {}
        for r in self.rows:
            if len(r) > 1 and r[4]:
                counts[r[4]] = counts.get(r[4], 0) + 1
        print("targets: " + (", ".join(f"{n} {word}" for word, n in counts.items()) or "none measured"))
        sys.stdout.flush()

