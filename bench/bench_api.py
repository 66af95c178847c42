"""HTTP API benchmark: `leadlens serve` under wrk, on a store of 1M leads and ~10M events.

  1. GET /api/v1/health and GET /api/v1/leads/stats (unfiltered), interleaved round by round:
     req/s of each and stats ÷ health (target ≥ 0.5).
  2. GET /api/v1/leads/stats?created_after=<as-of − 30 days>: p50/p99 (target p99 ≤ 50 ms).
  3. GET /api/v1/leads?min_score=80&max_score=100&per_page=100: p99 (target ≤ 20 ms).
  4. POST /api/v1/events, {"batch": [500 track messages]}: events/s (target ≥ 50,000), for random
     leads of the whole store, then for 100,000 and for 1,000 leads only (informative).
  5. POST /api/v1/intake, one new lead per request: leads/s (target ≥ 3,000).

Peers in the same run: health is the yardstick for stats (1.); for the stats latency, the same
aggregation (LeadStats.compute's two queries) run directly with Python's sqlite3 on the same
store, beside the server answering one request at a time; for the write scenarios, the disk
itself: its write rates with fdatasync, sequential (1 GiB, as the WAL is written) and as random
4 KiB pages of that file (as a checkpoint copies pages into the store), beside the bytes the
disk wrote per event or lead in each scenario (its sysfs sector count: WAL frames and checkpoint
copies) and the rate that made during the runs.

Data (cached in bench/out/api/, rebuilt with BENCH_REFRESH=1): `generate --leads 1000000
--seed 7` (its fixed as-of, 2026-11-01), `ingest --no-score`, then `score --all` with
models/default.json (installed on first use). The generated files are deleted once the store is
built. Every run serves a fresh copy of that store (serve.sqlite), so the write scenarios never
grow the cache. The "last 30 days" are the 30 days before the data's as-of, not the wall clock,
so the filter selects the same, realistic share of the store whenever the cache was built.
Each write scenario (events, events for 100,000 and 1,000 leads, intake) gets a fresh copy and a fresh
server, so none runs on what another wrote; before each of its runs the WAL the run before left
is checkpointed (untimed), so no run is billed for another's backlog, and each pays for
checkpointing its own writes as it goes. Peak RSS is the largest of the servers'.

The server gets an unlimited admin key from `leadlens keys create`; wrk reads it from the
environment (LEADLENS_API_KEY), so it is never on a command line or in the output.

A route that answers an error is reported as FAILED with its status and message, not measured.

Env: LEADLENS_BIN, BENCH_REFRESH as for every benchmark; BENCH_API_SECONDS (10) per wrk run;
BENCH_API_RUNS (3) wrk runs per scenario (medians are reported); BENCH_API_THREADS (2) and
BENCH_API_CONNECTIONS (16) for wrk; BENCH_API_LEADS (1000000): smaller only for smoke tests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

LEADS = h.env_int("BENCH_API_LEADS", 1_000_000)
SECONDS = h.env_int("BENCH_API_SECONDS", 10)
RUNS = h.env_int("BENCH_API_RUNS", 3)
THREADS = h.env_int("BENCH_API_THREADS", 2)
CONNECTIONS = h.env_int("BENCH_API_CONNECTIONS", 16)
HOT_LEADS = 1000
WARM_LEADS = 100_000   # between the two: a tenth of the store active, as a busy month might have it
SEED = 7
BATCH = 500                      # events per POST /api/v1/events
PEER_RUNS = 5                    # sequential stats requests / Python aggregations
START_TIMEOUT = 180.0            # s for the server to answer /health (migrations run first)
STOP_TIMEOUT = 30.0              # s after SIGTERM before SIGKILL

# Targets from the issue.
TARGET_STATS_RATIO = 0.5         # stats req/s ÷ health req/s  >=
TARGET_STATS_30D_P99_MS = 50.0   # <=
TARGET_LIST_P99_MS = 20.0        # <=
TARGET_EVENTS_PER_S = 50_000     # >=
TARGET_INTAKE_PER_S = 3_000      # >=

SCRATCH = h.OUT / "api"
DATA = SCRATCH / f"store-{LEADS}-s{SEED}"
STORE = DATA / "store.sqlite"
SERVE = SCRATCH / "serve.sqlite"
MODELS = SCRATCH / "models"
LOGS = SCRATCH / "logs"
WRK = h.BENCH_DIR / "wrk"


class PrepError(Exception):
    pass


# --------------------------------------------------------------------------
# Data


def run_prep(cmd: list, ok_codes=(0,)) -> tuple[str, float]:
    """Run a preparation step once; (stdout, seconds), or PrepError with the last stderr line."""
    cmd = [str(c) for c in cmd]
    h.log("  prep: " + " ".join(h.rel(c) for c in cmd))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        try:
            code, secs, _ = h.spawn(cmd, stdout_path=out, stderr_path=err, timeout=4 * h.default_timeout())
        except OSError as e:
            raise PrepError(f"cannot start {cmd[0]}: {e}") from e
        if code not in ok_codes:
            raise PrepError(f"{Path(cmd[0]).name} {cmd[1]} failed ({code}): "
                            f"{h._last_line(err) or h._last_line(out) or '(no output)'}")
        return Path(out).read_text(errors="replace"), secs


def prepare(binary: str) -> dict:
    """The cached 1M-lead store, built when missing or laid out differently from a store this
    build writes (page size, schema): generate, ingest --no-score, score --all."""
    stamp = DATA / "stamp.json"
    if not os.environ.get("BENCH_REFRESH") and stamp.is_file() and STORE.is_file():
        try:
            meta = json.loads(stamp.read_text())
            if stale := h.stale_store(binary, STORE):
                h.log(f"  prep: rebuilding the cached store: {stale}")
            elif meta.get("requested_leads") == LEADS and meta.get("seed") == SEED:
                h.log(f"  prep: cached {h.rel(STORE)} ({meta['leads']:,} leads, {meta['events']:,} events; "
                      "BENCH_REFRESH=1 rebuilds)")
                return meta
        except (OSError, ValueError, KeyError):
            pass
    shutil.rmtree(DATA, ignore_errors=True)
    gen = DATA / "gen"
    gen.mkdir(parents=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    for name in ("default.json", "features.json"):
        shutil.copyfile(h.ROOT / "models" / name, MODELS / name)

    out, gen_s = run_prep([binary, "generate", "--leads", LEADS, "--seed", SEED, "--out", h.rel(gen)])
    m = re.search(r"generated (\d+) leads .* and (\d+) events", out)
    if not m:
        raise PrepError(f"generate printed no summary: {out.strip()[-160:]}")
    with open(gen / "ground_truth.json", "rb") as f:
        as_of = re.search(rb'"as_of"\s*:\s*"([^"]+)"', f.read(4096))
    if not as_of:
        raise PrepError("no as_of in ground_truth.json")
    # Exit 1 means some rows were rejected; the generator writes a few deliberately odd ones.
    _, ingest_s = run_prep([binary, "ingest", h.rel(gen / "leads.csv"), h.rel(gen / "events.ndjson"),
                            "--db", h.rel(STORE), "--no-score"], ok_codes=(0, 1))
    _, score_s = run_prep([binary, "score", "--all", "--db", h.rel(STORE), "--models", h.rel(MODELS),
                           "--as-of", as_of.group(1).decode()])
    # Fold the WAL into the main file, so one file copy is the whole store.
    con = sqlite3.connect(STORE)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    shutil.rmtree(gen)  # ~2.5 GB; the store is the cache
    meta = {"requested_leads": LEADS, "seed": SEED, "leads": int(m.group(1)), "events": int(m.group(2)),
            "as_of": as_of.group(1).decode(), "generate_s": round(gen_s, 1), "ingest_s": round(ingest_s, 1),
            "score_s": round(score_s, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    stamp.write_text(json.dumps(meta, indent=1))
    h.log(f"  prep: built in {gen_s + ingest_s + score_s:.0f} s (generate {gen_s:.0f}, ingest {ingest_s:.0f}, "
          f"score {score_s:.0f})")
    return meta


def fresh_copy() -> None:
    h.log(f"  prep: copying the store to {h.rel(SERVE)}")
    h.remove_db(SERVE)
    for suffix in ("", "-wal"):
        if os.path.exists(f"{STORE}{suffix}"):
            shutil.copyfile(f"{STORE}{suffix}", f"{SERVE}{suffix}")


# --------------------------------------------------------------------------
# The server


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    key: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def why_dead(self) -> str:
        return f"server exited ({self.proc.returncode}): {h._last_line(str(self.log_path)) or '(no output)'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: str) -> Server:
    LOGS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = LOGS / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "serve", "--db", h.rel(SERVE), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=h.ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise PrepError(server.why_dead())
        try:
            with urllib.request.urlopen(server.base + "/api/v1/health", timeout=2) as r:
                if r.status == 200:
                    return server
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    stop_server(server)
    raise PrepError(f"no answer from /api/v1/health within {START_TIMEOUT:g} s")


def stop_server(server: Server) -> str:
    """SIGTERM, then wait: a clean shutdown finishes in-flight requests and exits 0."""
    if not server.alive():
        return f"had already exited ({server.proc.returncode})"
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        return f"did NOT exit within {STOP_TIMEOUT:g} s of SIGTERM; killed"
    took = time.monotonic() - t0
    return (f"exited cleanly (0) {took:.1f} s after SIGTERM" if code == 0
            else f"exited with status {code} {took:.1f} s after SIGTERM (not clean)")


def create_key(binary: str) -> str:
    """A new unlimited read/write/admin key: the line of stdout that is a key alone."""
    out, _ = run_prep([binary, "keys", "create", "--name", "bench", "--scopes", "read,write,admin",
                       "--rate", "unlimited", "--db", h.rel(SERVE)])
    keys = [ln.strip() for ln in out.splitlines() if re.fullmatch(r"[A-Za-z0-9_\-.~+/=]{16,}", ln.strip())]
    if not keys:
        raise PrepError("keys create printed no key line")
    return keys[-1]


def call(server: Server, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, bytes, float]:
    """One request: (status, body, seconds). Never raises for an HTTP error status."""
    req = urllib.request.Request(server.base + path, data=body, method=method)
    if server.key:
        req.add_header("Authorization", f"Bearer {server.key}")
    if body is not None:
        req.add_header("Content-Type", content_type)
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
            return r.status, data, time.perf_counter() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.perf_counter() - t0


def describe_error(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
        detail = f"{doc.get('code', '?')}: {doc.get('message', '')}"
    except (ValueError, AttributeError):
        detail = body[:120].decode("utf-8", "replace")
    return f"HTTP {status} ({detail})"


# --------------------------------------------------------------------------
# wrk


@dataclass
class Wrk:
    """One wrk run: requests, duration and latency percentiles (ms)."""
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int            # non-2xx/3xx responses, socket errors and timeouts
    written: int | None = None  # bytes the store's disk wrote meanwhile (write scenarios)

    @property
    def ok_per_s(self) -> float:
        return max(0, self.requests - self.errors) / self.seconds if self.seconds else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Wrk:
    """From the BENCH_JSON line of common.lua's done(); else from wrk's --latency text."""
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            d = json.loads(line[len("BENCH_JSON "):])
            errors = sum(d[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                        "timeouts"))
            return Wrk(d["requests"], d["duration_us"] / 1e6, d["p50_us"] / 1e3, d["p99_us"] / 1e3, errors)
    total = re.search(r"(\d+) requests in ([0-9.]+\w+),", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (total and p50 and p99):
        raise ValueError("no request count or latency distribution in wrk's output")
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(map(int, sock.groups())) if sock else 0
    return Wrk(int(total.group(1)), _ms(total.group(2)) / 1e3, _ms(p50.group(1)), _ms(p99.group(1)), errors)


def run_wrk(server: Server, path: str, script: str, env: dict | None = None) -> Wrk:
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "--latency",
           "--timeout", "10s", "-s", str(WRK / script), server.base + path]
    wenv = dict(os.environ, LEADLENS_API_KEY=server.key, BENCH_API_NONCE=secrets.token_hex(4),
                BENCH_API_LEADS=str(LEADS), BENCH_API_BATCH=str(BATCH))
    wenv.update(env or {})
    p = subprocess.run(cmd, cwd=h.ROOT, env=wenv, capture_output=True, text=True, timeout=SECONDS + 120)
    if p.returncode != 0:
        raise ValueError(f"wrk exited {p.returncode}: {(p.stderr or p.stdout).strip()[-160:]}")
    return parse_wrk(p.stdout)


@dataclass
class Scenario:
    """A route under wrk, RUNS times. `error` set means it was not (fully) measured."""
    name: str
    method: str
    path: str
    script: str
    preflight_body: Callable[[], bytes] | None = None
    env: dict | None = None
    runs: list[Wrk] = field(default_factory=list)
    error: str = ""
    preflight: dict | None = None

    def check(self, server: Server) -> bool:
        """One request first: an error status (e.g. 404 for a route not built yet) is reported
        instead of being measured as fast failures."""
        if not server.alive():
            self.error = server.why_dead()
            return False
        body = self.preflight_body() if self.preflight_body else None
        try:
            status, data, _ = call(server, self.method, self.path, body)
        except OSError as e:
            self.error = f"request failed: {e}"
            return False
        if not 200 <= status < 300:
            self.error = describe_error(status, data)
            return False
        try:
            self.preflight = json.loads(data)
        except ValueError:
            self.preflight = None
        return True

    def once(self, server: Server, settle: Path | None = None) -> None:
        """One wrk run. With `settle`, a write run: the WAL it leaves is then checkpointed
        (untimed, see `settle_wal`), and the bytes the store's disk wrote over the run and that
        checkpoint are recorded with it."""
        if self.error:
            return
        if not server.alive():
            self.error = server.why_dead()
            return
        before = device_written_bytes(settle) if settle is not None else None
        try:
            w = run_wrk(server, self.path, self.script, self.env)
        except (ValueError, OSError, subprocess.SubprocessError) as e:
            self.error = str(e)
            return
        if settle is not None:
            settle_wal(settle)
            if before is not None and (after := device_written_bytes(settle)) is not None:
                w.written = after - before
        h.log(f"  {self.name}: {w.requests:,} requests in {w.seconds:.1f} s, {w.ok_per_s:,.0f} ok/s, "
              f"p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms" + (f", {w.errors:,} errors" if w.errors else ""))
        if w.errors > w.requests * 0.01:
            self.error = f"{w.errors:,} of {w.requests:,} requests failed (non-2xx, socket errors or timeouts)"
        self.runs.append(w)

    def median(self, attr: str) -> float | None:
        return statistics.median(getattr(w, attr) for w in self.runs) if self.runs and not self.error else None

    def written_per_request(self) -> float | None:
        """Median bytes written to storage per successful request."""
        # A run that wrote nothing measurable (a store on tmpfs) says nothing about the disk.
        per = [w.written / ok for w in self.runs if w.written and (ok := w.requests - w.errors) > 0]
        return statistics.median(per) if per and not self.error else None

    def spread(self) -> str:
        if len(self.runs) < 2:
            return f"{len(self.runs)} run"
        rates = [w.ok_per_s for w in self.runs]
        return f"median of {len(rates)}, {min(rates):,.0f}–{max(rates):,.0f} req/s"


def settle_wal(db: Path, limit_s: float = 120) -> None:
    """Checkpoints the WAL a write run left (untimed), so the next run is not billed for its
    backlog; each run still pays for checkpointing its own writes, which the server's
    checkpointer does while it runs."""
    deadline = time.monotonic() + limit_s
    with sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10) as con:
        while time.monotonic() < deadline:
            busy, log, done = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy == 0 and log == done:
                return
            time.sleep(0.2)


def device_written_bytes(path: Path) -> int | None:
    """Bytes the block device holding `path` has written since boot (its sysfs stat, sectors
    of 512 bytes): what reached the disk, WAL frames and checkpoint copies alike, once each
    however often the page cache saw them. The bench machine runs nothing else meanwhile."""
    try:
        dev = os.stat(path).st_dev
        fields = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat").read_text().split()
        return int(fields[6]) * 512
    except (OSError, ValueError, IndexError):
        return None


def events_body() -> bytes:
    ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tag = secrets.token_hex(4)
    return json.dumps({"batch": [
        {"type": "track", "userId": f"L{(i * 7919) % LEADS + 1:07d}", "event": "Email Opened",
         "messageId": f"bench-pre-{tag}-{i}", "timestamp": ts, "properties": {"campaign_id": "bench"}}
        for i in range(BATCH)]}).encode()


def intake_body() -> bytes:
    return json.dumps({"email": f"bench-pre-{secrets.token_hex(4)}@example.com", "first_name": "Bench",
                       "last_name": "Preflight", "company": "Bench Co", "source": "bench"}).encode()


# --------------------------------------------------------------------------
# The Python peer: LeadStats.compute's queries, straight on the store


def python_stats(store: Path, created_from_ms: int | None) -> float:
    """Seconds for the cube and daily queries of LeadStats.compute, in one read-only connection."""
    where, args = ("created_at >= ?", [created_from_ms]) if created_from_ms is not None else ("1", [])
    day = 86_400_000
    now = int(time.time() * 1000)
    first = (now // day - 29) * day
    t0 = time.perf_counter()
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        con.execute(f"""
            SELECT status, source,
                   CASE WHEN score IS NULL THEN -1 WHEN score >= 90 THEN 9 ELSE score / 10 END AS bucket,
                   count(*), total(score), total(probability)
            FROM leads WHERE {where} GROUP BY 1, 2, 3""", args).fetchall()
        lo = max(first, created_from_ms or first)
        con.execute(f"SELECT created_at / {day}, count(*) FROM leads WHERE {where} AND created_at >= ? "
                    f"AND created_at < ? GROUP BY 1", args + [lo, (now // day + 1) * day]).fetchall()
    finally:
        con.close()
    return time.perf_counter() - t0


@dataclass
class DiskRates:
    """The disk's write rates with fdatasync, bytes/s: sequential, as the WAL is written, and
    4 KiB pages at random offsets of a large file, as a checkpoint copies pages into the store."""
    sequential: float
    random_pages: float


def disk_write_rates(directory: Path, total: int = 1 << 30, pages: int = 16_384, runs: int = 3) -> DiskRates | None:
    """`total` bytes in 1 MiB writes, then fdatasync; then `pages` random pages of that file
    rewritten, then fdatasync. Medians of `runs`."""
    chunk = b"\xa5" * (1 << 20)
    page = b"\x5a" * 4096
    path = directory / "disk-rate.tmp"
    sequential, scattered = [], []
    rng = random.Random(SEED)
    try:
        for _ in range(runs):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                t0 = time.perf_counter()
                for _ in range(total // len(chunk)):
                    os.write(fd, chunk)
                os.fdatasync(fd)
                sequential.append(total / (time.perf_counter() - t0))
                offsets = sorted(rng.sample(range(total // len(page)), pages))
                t0 = time.perf_counter()
                for index in offsets:
                    os.pwrite(fd, page, index * len(page))
                os.fdatasync(fd)
                scattered.append(pages * len(page) / (time.perf_counter() - t0))
            finally:
                os.close(fd)
                os.unlink(path)
    except OSError as e:
        h.log(f"  disk write rates not measured: {e}")
        return None
    return DiskRates(statistics.median(sequential), statistics.median(scattered))


# --------------------------------------------------------------------------
# Report


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} ms"


def rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}/s"


# --------------------------------------------------------------------------
# The benchmark


def main() -> None:
    binary = h.leadlens_bin()
    print(f"== api: leadlens serve under wrk ({THREADS} threads, {CONNECTIONS} connections, {SECONDS} s × "
          f"{RUNS} runs per scenario) on {LEADS:,} leads ==", flush=True)
    fig = h.Figures("API benchmark")
    scenarios_all = ["1. GET /api/v1/health vs GET /api/v1/leads/stats", "2. stats, last 30 days",
                     "3. leads with score 80–100", "4. POST /api/v1/events", "5. POST /api/v1/intake"]

    def fail_all(reason: str) -> None:
        for title in scenarios_all:
            fig.section(title)
            fig.add("(not run)", "n/a", "", "FAILED", reason)
        fig.print()

    if shutil.which("wrk") is None:
        return fail_all("wrk is not installed (make deps installs it; apt package wrk)")
    if not os.path.exists(binary):
        return fail_all(f"binary missing: {h.rel(binary)} (make build, or set LEADLENS_BIN)")
    try:
        meta = prepare(binary)
    except (PrepError, OSError, sqlite3.Error) as e:
        return fail_all(f"data preparation failed: {e}")
    as_of = dt.datetime.fromisoformat(meta["as_of"].replace("Z", "+00:00"))
    since = (as_of - dt.timedelta(days=30)).date()
    since_ms = int(dt.datetime.combine(since, dt.time(), dt.timezone.utc).timestamp() * 1000)
    print(f"store: {h.rel(STORE)}: {meta['leads']:,} leads, {meta['events']:,} events, as-of {meta['as_of']}; "
          f"served from a fresh copy, {h.rel(SERVE)}", flush=True)

    try:
        fresh_copy()
        server = start_server(binary)
    except (PrepError, OSError) as e:
        return fail_all(f"server did not start: {e}")
    key_note = ""
    try:
        server.key = create_key(binary)
        h.log("  prep: API key created (not shown)")
    except PrepError as e:
        key_note = f"no API key ({e}); requests go without one"
        print(key_note, flush=True)

    unclean: list[str] = []  # write scenarios' servers that did not stop cleanly
    disk: DiskRates | None = None
    try:
        health = Scenario("health", "GET", "/api/v1/health", "get.lua")
        stats = Scenario("stats", "GET", "/api/v1/leads/stats", "get.lua")
        stats30 = Scenario("stats 30d", "GET", f"/api/v1/leads/stats?created_after={since}", "get.lua")
        top = Scenario("leads 80–100", "GET", "/api/v1/leads?min_score=80&max_score=100&per_page=100", "get.lua")
        events = Scenario("events", "POST", "/api/v1/events", "events.lua", events_body)
        # The same load on the 1,000 leads an active campaign touches: the pages they live on stay
        # hot, so this measures the write path's CPU rather than random page writes.
        events_hot = Scenario("events, 1,000 leads", "POST", "/api/v1/events", "events.lua", events_body,
                              env={"BENCH_API_LEADS": str(HOT_LEADS)})
        events_warm = Scenario("events, 100,000 leads", "POST", "/api/v1/events", "events.lua", events_body,
                               env={"BENCH_API_LEADS": str(WARM_LEADS)})
        intake = Scenario("intake", "POST", "/api/v1/intake", "intake.lua", intake_body)
        for s in (health, stats, stats30, top):
            s.check(server)

        # Reads first, on the store as built; the writes then change it.
        for _ in range(RUNS):  # interleaved, so a busy moment of the machine hits both alike
            health.once(server)
            stats.once(server)
        for _ in range(RUNS):
            stats30.once(server)
        for _ in range(RUNS):
            top.once(server)

        # Peer for the stats latency: one request at a time vs the same queries in Python.
        seq: dict[str, list[float]] = {"stats": [], "stats 30d": []}
        for s in (stats, stats30):
            for _ in range(PEER_RUNS if not s.error and server.alive() else 0):
                status, _, secs = call(server, "GET", s.path)
                if status == 200:
                    seq[s.name].append(secs * 1e3)
        py: dict[str, list[float]] = {"stats": [], "stats 30d": []}
        try:
            for _ in range(PEER_RUNS):
                py["stats"].append(python_stats(STORE, None) * 1e3)
                py["stats 30d"].append(python_stats(STORE, since_ms) * 1e3)
        except sqlite3.Error as e:
            py = {}
            print(f"python sqlite3 peer failed: {e}", flush=True)

        disk = disk_write_rates(SCRATCH)
        if disk:
            h.log(f"  disk: {disk.sequential / 1e6:,.0f} MB/s sequential, {disk.random_pages / 1e6:,.0f} MB/s "
                  "random 4 KiB pages, with fdatasync")
        peaks = []
        writes = (events, events_warm, events_hot, intake)
        for i, s in enumerate(writes):
            if i > 0:  # each write scenario on the store as built, not on what the one before wrote
                peaks.append(server.peak_rss_mib())
                if "cleanly" not in (how := stop_server(server)):
                    unclean.append(f"after {writes[i - 1].name}: {how}")
                try:
                    fresh_copy()
                    server = start_server(binary)
                    server.key = create_key(binary)
                except (PrepError, OSError) as e:
                    s.error = f"server did not restart on a fresh copy: {e}"
                    break
            if s.check(server):
                settle_wal(SERVE)  # the preflight's
                for _ in range(RUNS):
                    s.once(server, settle=SERVE)
        peaks.append(server.peak_rss_mib())
        rss = max((p for p in peaks if p is not None), default=None)
    finally:
        stopped = stop_server(server)

    # ---------------------------------------------------------------- report
    def med(xs: list[float]) -> str:
        return ms(statistics.median(xs)) if xs else "n/a"

    def peer_rows(s: Scenario) -> None:
        fig.add("  server, one request at a time", med(seq[s.name]), "", "",
                f"urllib, median of {len(seq[s.name])}" if seq[s.name] else (s.error or "not measured"))
        fig.add("  peer: Python sqlite3, same queries", med(py.get(s.name, [])), "", "",
                f"median of {PEER_RUNS}, read-only connection to the same store" if py else "failed")

    explained: list[bool] = []  # the first disk row says how it is measured

    def disk_bound(s: Scenario, items_per_request: int, item: str, indent: str = "  ") -> None:
        """Bytes the disk wrote per item, and the rate that made during the runs, beside the
        disk's own rates: a scenario writing near them waits on the disk, not the CPU."""
        per_request = s.written_per_request()
        per_s = s.median("ok_per_s")
        if per_request is None or not per_s:
            return
        per_item = per_request / items_per_request
        note = f"{per_request * per_s / 1e6:,.0f} MB/s written during the runs"
        if not explained:
            explained.append(True)
            note = f"the disk's sectors written over each run and the untimed checkpoint after it; {note}"
            if disk:
                note += (f"; the disk takes {disk.sequential / 1e6:,.0f} MB/s sequentially (the WAL) and "
                         f"{disk.random_pages / 1e6:,.0f} MB/s as random 4 KiB pages (checkpoints), with fdatasync")
        fig.add(f"{indent}disk writes per {item}", f"{per_item / 1024:,.1f} KiB", "", "", note)

    fig.section(scenarios_all[0])
    hr, sr = health.median("ok_per_s"), stats.median("ok_per_s")
    fig.add("health throughput", rate(hr), "", "" if hr else "FAILED", health.spread() if hr else health.error)
    fig.add("stats throughput (unfiltered)", rate(sr), "", "" if sr else "FAILED",
            f"{stats.spread()}; p50 {ms(stats.median('p50_ms'))}" if sr else stats.error)
    if hr and sr:
        ratio = sr / hr
        fig.add("  stats ÷ health", f"{ratio:.3f}", f"≥ {TARGET_STATS_RATIO:g}", verdict(ratio >= TARGET_STATS_RATIO),
                "runs interleaved round by round")
    else:
        fig.add("  stats ÷ health", "n/a", f"≥ {TARGET_STATS_RATIO:g}", "FAILED", "a side was not measured")
    peer_rows(stats)

    fig.section(f"{scenarios_all[1]} (created_after={since}, the data's as-of − 30 days)")
    p99 = stats30.median("p99_ms")
    fig.add("stats 30d p50", ms(stats30.median("p50_ms")), "", "" if p99 is not None else "FAILED",
            f"{rate(stats30.median('ok_per_s'))}; {stats30.spread()}" if p99 is not None else stats30.error)
    fig.add("stats 30d p99", ms(p99), f"≤ {TARGET_STATS_30D_P99_MS:g} ms",
            verdict(p99 <= TARGET_STATS_30D_P99_MS) if p99 is not None else "FAILED")
    peer_rows(stats30)

    fig.section(f"{scenarios_all[2]}: {top.path}")
    p99 = top.median("p99_ms")
    fig.add("list p50", ms(top.median("p50_ms")), "", "" if p99 is not None else "FAILED",
            f"{rate(top.median('ok_per_s'))}; {top.spread()}" if p99 is not None else top.error)
    fig.add("list p99", ms(p99), f"≤ {TARGET_LIST_P99_MS:g} ms", verdict(p99 <= TARGET_LIST_P99_MS) if p99 is not None else "FAILED")

    fig.section(f"{scenarios_all[3]}, batches of {BATCH} track messages")
    er = events.median("ok_per_s")
    if er:
        added = (events.preflight or {}).get("data", {}).get("events_added")
        fig.add("events ingested", rate(er * BATCH), f"≥ {TARGET_EVENTS_PER_S:,}/s",
                verdict(er * BATCH >= TARGET_EVENTS_PER_S),
                f"{er:,.1f} req/s × {BATCH}; p99 {ms(events.median('p99_ms'))}; {events.spread()}; "
                f"preflight events_added {added}")
    else:
        fig.add("events ingested", "n/a", f"≥ {TARGET_EVENTS_PER_S:,}/s", "FAILED", events.error)
    disk_bound(events, BATCH, "event")
    for leads, scenario in ((WARM_LEADS, events_warm), (HOT_LEADS, events_hot)):
        per_s = scenario.median("ok_per_s")
        fig.add(f"  same, messages for {leads:,} leads", rate(per_s * BATCH) if per_s else "n/a", "", "",
                f"p99 {ms(scenario.median('p99_ms'))}; {scenario.spread()}" if per_s else scenario.error)
        disk_bound(scenario, BATCH, "event", indent="    ")

    fig.section(f"{scenarios_all[4]}, one new lead per request")
    ir = intake.median("ok_per_s")
    if ir:
        fig.add("leads created", rate(ir), f"≥ {TARGET_INTAKE_PER_S:,}/s", verdict(ir >= TARGET_INTAKE_PER_S),
                f"p99 {ms(intake.median('p99_ms'))}; {intake.spread()}")
        disk_bound(intake, 1, "lead")
    else:
        fig.add("leads created", "n/a", f"≥ {TARGET_INTAKE_PER_S:,}/s", "FAILED", intake.error)

    fig.section("server")
    clean = "cleanly" in stopped and not unclean
    fig.add("shutdown on SIGTERM", "clean" if clean else "NOT clean", "clean", verdict(clean),
            "; ".join(unclean + [stopped]))
    fig.add("server peak RSS", f"{rss:.0f} MiB" if rss else "n/a", "", "", "VmHWM before shutdown")
    if key_note:
        fig.add("API key", "none", "", "", key_note)
    fig.print()
    print(f"server log: {h.rel(server.log_path)}")
    h.remove_db(SERVE)


if __name__ == "__main__":
    h.main_guard(main)
