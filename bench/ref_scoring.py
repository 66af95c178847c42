"""numpy / scikit-learn side of the scoring benchmark (run as a child of bench_scoring.py).

Each subcommand prints one JSON object on its last stdout line; the benchmark
parses it.  Kept out of bench_scoring.py so that the benchmark process never
imports numpy: children forked by the harness inherit the parent's RSS as a
floor (see harness.py), and each contender's peak RSS stays its own.

  fit DIR            LogisticRegression(solver="lbfgs", C).fit on DIR/X.f64, y.f64
                     (as written by `leadlens train --export-matrix DIR`);
                     only fit() is timed
  logloss DIR M...   training log-loss of LeadLens model files M on DIR's X, y
  kernel             numpy X @ w on a float64 C-contiguous rows×cols matrix,
                     median of --repeats after one warm-up
  quality            ground-truth AUC over a store's labeled / holdout leads,
                     and the stored scores' AUC over the same holdout
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def blas_info() -> str:
    """numpy's BLAS, e.g. 'scipy-openblas 0.3.31.188.0'."""
    try:
        cfg = np.__config__.CONFIG["Build Dependencies"]["blas"]  # type: ignore[attr-defined]
        return f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def load_matrix(directory: str) -> tuple[np.ndarray, np.ndarray, dict]:
    d = Path(directory)
    meta = json.loads((d / "meta.json").read_text())
    rows, cols = int(meta["rows"]), int(meta["cols"])
    x = np.fromfile(d / "X.f64", dtype="<f8")
    y = np.fromfile(d / "y.f64", dtype="<f8")
    if x.size != rows * cols or y.size != rows:
        raise SystemExit(f"{d}: X has {x.size} values and y {y.size}, meta says {rows}×{cols}")
    return np.ascontiguousarray(x.reshape(rows, cols)), y, meta


def log_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """Mean −[y log p + (1−y) log(1−p)], p = σ(Xw + b), computed stably as log(1+eᶻ) − y·z."""
    z = x @ w + b
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def objective(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, c: float) -> float:
    """scikit-learn's (and LeadLens's) objective: C·Σ log-loss + ½‖w‖², intercept unpenalized."""
    return c * log_loss(x, y, w, b) * len(y) + 0.5 * float(w @ w)


def cmd_fit(a: argparse.Namespace) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    import sklearn

    x, y, meta = load_matrix(a.dir)
    clf = LogisticRegression(solver="lbfgs", C=a.C, max_iter=a.max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(x, y)
        seconds = time.perf_counter() - t0
    w, b = clf.coef_[0].astype(float), float(clf.intercept_[0])
    return {
        "fit_seconds": seconds,
        "n_iter": int(np.max(clf.n_iter_)),
        "converged": not any(issubclass(c.category, ConvergenceWarning) for c in caught),
        "rows": int(meta["rows"]), "cols": int(meta["cols"]),
        "intercept": b, "coef": w.tolist(),
        "log_loss": log_loss(x, y, w, b),
        "objective": objective(x, y, w, b, a.C),
        "versions": f"scikit-learn {sklearn.__version__}, numpy {np.__version__} ({blas_info()})",
    }


def cmd_logloss(a: argparse.Namespace) -> dict:
    x, y, meta = load_matrix(a.dir)
    columns = list(meta["columns"])
    out = {}
    for path in a.models:
        model = json.loads(Path(path).read_text())
        by_name = {c["feature"]: float(c["weight"]) for c in model["coefficients"]}
        missing = [c for c in columns if c not in by_name]
        if missing or len(by_name) != len(columns):
            out[path] = {"error": f"model columns differ from the matrix's (missing {missing[:3]})"}
            continue
        w = np.array([by_name[c] for c in columns])
        b = float(model["intercept"])
        c = model.get("C") or a.C
        out[path] = {"log_loss": log_loss(x, y, w, b), "objective": objective(x, y, w, b, c),
                     "iterations": model.get("iterations"), "converged": model.get("converged"),
                     "weights": w.tolist(), "intercept": b}
    return {"models": out}


def cmd_kernel(a: argparse.Namespace) -> dict:
    rng = np.random.default_rng(20261101)
    x = np.ascontiguousarray(rng.random((a.rows, a.cols)) - 0.5)   # float64, C order
    w = rng.random(a.cols) - 0.5
    assert x.dtype == np.float64 and x.flags["C_CONTIGUOUS"]
    y = x @ w                                                      # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        y = x @ w
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"rows": a.rows, "cols": a.cols, "median_seconds": median,
            "rows_per_second": a.rows / median, "checksum": float(y.sum()),
            "blas": f"numpy {np.__version__} ({blas_info()})"}


def is_holdout(lead_id: int, fraction: float) -> bool:
    """Trainer.isHoldout: splitmix64 finalizer of the store's lead id, top 53 bits < fraction."""
    if fraction <= 0:
        return False
    m = (1 << 64) - 1
    z = (lead_id + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return (z >> 11) / float(1 << 53) < fraction


def cmd_quality(a: argparse.Namespace) -> dict:
    from sklearn.metrics import roc_auc_score

    truth = json.loads(Path(a.truth).read_text())
    by_ext = {t["external_id"]: (t["probability"], t["label"]) for t in truth["leads"]}
    con = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, external_id, probability FROM leads").fetchall()
    finally:
        con.close()
    all_p, all_y, hold_p, hold_y, hold_score, unmatched = [], [], [], [], [], 0
    for lead_id, ext, stored in rows:
        t = by_ext.get(ext)
        if t is None:
            unmatched += 1
            continue
        p, label = t
        if label is None:
            continue
        all_p.append(p)
        all_y.append(label)
        if is_holdout(lead_id, a.holdout):
            hold_p.append(p)
            hold_y.append(label)
            hold_score.append(stored)

    def auc(y, p):
        return float(roc_auc_score(y, p)) if len(set(y)) == 2 else None

    scored = [s for s in hold_score if s is not None]
    return {
        "leads_in_store": len(rows), "unmatched": unmatched,
        "labeled": len(all_y), "labeled_positives": int(sum(all_y)),
        "holdout": len(hold_y), "holdout_positives": int(sum(hold_y)),
        "truth_auc_all": auc(all_y, all_p),
        "truth_auc_holdout": auc(hold_y, hold_p),
        # AUC of the store's own probabilities (after `score --all`) on the same holdout leads
        "stored_auc_holdout": auc(hold_y, hold_score) if len(scored) == len(hold_score) and scored else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("dir")
    f.add_argument("--C", type=float, default=1.0)
    f.add_argument("--max-iter", type=int, default=1000)
    ll = sub.add_parser("logloss")
    ll.add_argument("dir")
    ll.add_argument("models", nargs="+")
    ll.add_argument("--C", type=float, default=1.0)
    k = sub.add_parser("kernel")
    k.add_argument("--rows", type=int, default=1_000_000)
    k.add_argument("--cols", type=int, default=32)
    k.add_argument("--repeats", type=int, default=20)
    q = sub.add_parser("quality")
    q.add_argument("--truth", required=True)
    q.add_argument("--db", required=True)
    q.add_argument("--holdout", type=float, default=0.2)
    a = ap.parse_args()
    result = {"fit": cmd_fit, "logloss": cmd_logloss, "kernel": cmd_kernel, "quality": cmd_quality}[a.cmd](a)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
