#!/usr/bin/env python3
"""Generate the reference JSON fixtures used by the LeadScoring Swift tests.

How to re-run
-------------
    pip install scikit-learn statsmodels numpy pandas
    python3 Tests/LeadScoringTests/Fixtures/make_fixtures.py

(run from the repository root; the script writes next to itself, so the working
directory does not actually matter).  The script is deterministic: all random
data comes from ``numpy.random.default_rng`` with fixed seeds, and re-running it
with the same library versions reproduces the files byte for byte.

Generated with
--------------
    Python 3.11.7, numpy 2.4.6, scikit-learn 1.9.1, statsmodels 0.15.0
    (pandas 3.1.1).  Each JSON file records the versions actually used under
    "generated_by": {"python", "numpy", "sklearn", "statsmodels"}.

Fixtures
--------
sklearn_logistic.json
    L2-penalised logistic regression as fitted by scikit-learn,
    ``LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100000)``,
    i.e. the minimiser of  C * sum_i logloss_i + 0.5 * ||w||^2  with an
    UNPENALISED intercept.  For each case: "x" (already standardised),
    "y", "coef", "intercept", and "log_loss" =
    sklearn.metrics.log_loss(y, predict_proba(x)[:, 1]) on the training data.
    Extra diagnostic keys: "objective" (value of the objective above at the
    stored solution), "max_abs_grad" (sup-norm of its gradient there),
    "solver" (which solver's result is stored) and "lbfgs_vs_newton_max_rel_diff".
    The fit is cross-checked with solver="newton-cholesky" (tol=1e-12); the two
    must agree to 1e-7 relative, otherwise the newton-cholesky result is stored
    and a warning is printed.
    How "x" is built: raw features are simulated, standardised with
    sklearn StandardScaler (population std, ddof=0), then ROUNDED TO 6 DECIMAL
    PLACES (Python round(), so each value is the double nearest a 6-decimal
    number and its JSON text is short).  The rounding keeps the file under
    ~600 KB; the model is fitted on exactly the rounded matrix stored in the
    file, so the Swift side must use "x" as-is and must NOT re-standardise it
    (column means are 0 and stds are 1 only to within ~1e-6).
    Cases:
      c1_correlated        n=3000, d=6, columns share a latent factor, one binary
                           column, labels drawn from a true logistic model, C=1
      c005_strong_penalty  same kind of data, n=1500, d=5, C=0.05
      c1_imbalanced        n=4000, d=4, ~5% positives, C=1
      c1_onehot            n=2000, a 4-level categorical fully one-hot encoded
                           (all 4 columns) + 2 numeric columns, C=1.  The
                           standardised one-hot columns are still exactly
                           linearly dependent (sum_k s_k z_k = 0), so the design
                           is rank deficient; only the L2 penalty makes the
                           solution unique.

published_logit.json
    Unpenalised maximum-likelihood logit, as statsmodels reports it
    (``sm.Logit(y, sm.add_constant(X)).fit(method="newton", tol=1e-12)``), on
    two published datasets bundled with statsmodels.  "x" holds the RAW
    regressor values (no constant column) in the order of "columns";
    "params"/"bse" are keyed by "const" and the column names; "llf" is the
    maximised log-likelihood.
      spector  Spector & Mazzeo (1980), GRADE ~ GPA + TUCE + PSI, n=32.  The
               script asserts the well-known estimates const=-13.0213,
               GPA=2.8261, TUCE=0.0952, PSI=2.3787 (4 decimals).
      fair     Fair (1978) affairs data, n=6366, y = (affairs > 0),
               regressors rate_marriage, age, yrs_married, children,
               religious, educ (raw numeric, no dummies).

metrics.json
    Binary-classification metrics from sklearn.metrics with default arguments:
    "auc" = roc_auc_score(y, p) (ties get half credit), "log_loss" =
    log_loss(y, p), "brier" = brier_score_loss(y, p) = mean((y - p)^2).
    log_loss clipping in scikit-learn 1.9.1 (sklearn/metrics/_classification.py,
    log_loss -> _validate_multiclass_probabilistic_prediction -> _log_loss):
    a 1-D p is first expanded to the two columns [1 - p, p]; then EVERY entry
    of that matrix is clipped to [eps, 1 - eps] with
    eps = numpy.finfo(float64).eps = 2.220446049250313e-16 (2**-52)
    (1 - eps = 0.9999999999999998); rows are NOT renormalised after clipping.
    So per sample:  loss = -log(clip(p))      if y == 1
                    loss = -log(clip(1 - p))  if y == 0
    where 1 - p is computed in float64 before clipping; a p of exactly 0 or 1
    on the wrong label therefore costs -log(2**-52) = 36.04365338911715, and on
    the right label costs -log(1 - 2**-52) ~= 2.22e-16.  log_loss is the mean.
    This eps is stored in the file as "log_loss_clip_eps".
    Cases: continuous (n=500, labels drawn from p), ties_rounded (n=800, p
    rounded to 1 decimal), all_tied (n=50, p=0.3 everywhere, AUC=0.5),
    extremes (n=40, includes p exactly 0.0 and 1.0 with both labels),
    imbalanced (n=1000, ~3% positives, p rounded to 2 decimals).
"""

import json
import math
import os
import platform
import sys
import warnings

import numpy as np
import sklearn
import statsmodels
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
X_DECIMALS = 6
GENERATED_BY = {
    "python": platform.python_version(),
    "numpy": np.__version__,
    "sklearn": sklearn.__version__,
    "statsmodels": statsmodels.__version__,
}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def write_json(name, obj):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    with open(path) as f:
        json.load(f)  # sanity: must round-trip
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


# --------------------------------------------------------------------------
# 1. sklearn L2 logistic regression
# --------------------------------------------------------------------------

def standardize_and_round(raw):
    z = StandardScaler().fit_transform(raw)  # ddof=0
    rows = [[round(float(v), X_DECIMALS) + 0.0 for v in row] for row in z]  # +0.0: no -0.0
    return np.array(rows, dtype=np.float64), rows


def draw_labels(rng, raw, beta, b0):
    p = sigmoid(raw @ beta + b0)
    return (rng.random(raw.shape[0]) < p).astype(int)


def case_correlated(seed, n, d):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal(n)  # shared latent factor
    cols = [
        f + 0.5 * rng.standard_normal(n),
        0.8 * f + 0.6 * rng.standard_normal(n),
        -0.5 * f + rng.standard_normal(n),
        rng.lognormal(0.0, 0.5, n),  # skewed, independent
        (f + rng.standard_normal(n) > 0.3).astype(float),  # binary
        0.4 * f + 0.9 * rng.standard_normal(n),
    ][:d]
    raw = np.column_stack(cols)
    beta = np.array([0.9, -0.6, 0.4, 0.5, 1.1, -0.3])[:d]
    y = draw_labels(rng, raw, beta, -0.7)
    return raw, y


def case_imbalanced(seed, n, target=0.05):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal(n)
    raw = np.column_stack([
        f + 0.7 * rng.standard_normal(n),
        rng.standard_normal(n),
        0.5 * f + rng.standard_normal(n),
        rng.exponential(1.0, n),
    ])
    beta = np.array([0.8, -0.5, 0.6, 0.4])
    eta = raw @ beta
    lo, hi = -20.0, 20.0  # intercept so that the mean probability is `target`
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sigmoid(eta + mid).mean() < target:
            lo = mid
        else:
            hi = mid
    y = (rng.random(n) < sigmoid(eta + 0.5 * (lo + hi))).astype(int)
    return raw, y


def case_onehot(seed, n):
    rng = np.random.default_rng(seed)
    cat = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    onehot = np.eye(4)[cat]
    num1 = rng.standard_normal(n)
    num2 = 0.5 * num1 + rng.gamma(2.0, 1.0, n)
    raw = np.column_stack([onehot, num1, num2])
    level_effect = np.array([-0.8, 0.0, 0.5, 1.2])
    eta = level_effect[cat] + 0.7 * num1 - 0.3 * num2
    y = (rng.random(n) < sigmoid(eta)).astype(int)
    return raw, y


def l2_objective_and_grad(x, y, w, b, C):
    z = x @ w + b
    # sum of logloss = sum(log(1+exp(z)) - y*z), computed stably
    obj = C * float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * float(w @ w)
    r = sigmoid(z) - y
    grad_w = C * (x.T @ r) + w
    grad_b = C * float(np.sum(r))
    return obj, float(max(np.max(np.abs(grad_w)), abs(grad_b)))


def fit_logistic(x, y, C, solver):
    m = LogisticRegression(C=C, solver=solver, tol=1e-12, max_iter=100000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning must not pass silently
        m.fit(x, y)
    return m


def make_sklearn_logistic():
    specs = [
        ("c1_correlated", 1.0, lambda: case_correlated(101, 3000, 6)),
        ("c005_strong_penalty", 0.05, lambda: case_correlated(202, 1500, 5)),
        ("c1_imbalanced", 1.0, lambda: case_imbalanced(303, 4000)),
        ("c1_onehot", 1.0, lambda: case_onehot(404, 2000)),
    ]
    cases, agreement = [], {}
    for name, C, gen in specs:
        raw, y = gen()
        x, x_rows = standardize_and_round(raw)
        m_lb = fit_logistic(x, y, C, "lbfgs")
        m_nc = fit_logistic(x, y, C, "newton-cholesky")
        p_lb = np.append(m_lb.coef_.ravel(), m_lb.intercept_[0])
        p_nc = np.append(m_nc.coef_.ravel(), m_nc.intercept_[0])
        rel = float(np.max(np.abs(p_lb - p_nc) / np.maximum(np.abs(p_nc), 1e-12)))
        agreement[name] = rel
        chosen, solver = m_lb, "lbfgs"
        if rel > 1e-7:
            print(f"WARNING {name}: lbfgs vs newton-cholesky max rel diff {rel:.3e} "
                  "> 1e-7; storing newton-cholesky", file=sys.stderr)
            chosen, solver = m_nc, "newton-cholesky"
        w, b = chosen.coef_.ravel(), float(chosen.intercept_[0])
        obj, gmax = l2_objective_and_grad(x, y, w, b, C)
        ll = float(log_loss(y, chosen.predict_proba(x)[:, 1]))
        print(f"  {name}: n={len(y)} d={x.shape[1]} pos_rate={y.mean():.4f} "
              f"lbfgs/newton max rel diff={rel:.2e} max|grad|={gmax:.2e} log_loss={ll:.6f}")
        cases.append({
            "name": name,
            "C": float(C),
            "x": x_rows,
            "y": [int(v) for v in y],
            "coef": floats(w),
            "intercept": b,
            "log_loss": ll,
            "objective": obj,
            "max_abs_grad": gmax,
            "solver": solver,
            "lbfgs_vs_newton_max_rel_diff": rel,
        })
    write_json("sklearn_logistic.json", {"generated_by": GENERATED_BY, "cases": cases})
    return agreement


# --------------------------------------------------------------------------
# 2. Published datasets, unpenalised logit (statsmodels)
# --------------------------------------------------------------------------

def fit_sm_logit(X, y):
    res = sm.Logit(y, sm.add_constant(X)).fit(method="newton", maxiter=100, tol=1e-12, disp=0)
    assert res.mle_retvals["converged"], res.mle_retvals
    score = np.max(np.abs(res.model.score(res.params)))
    assert score < 1e-6, score
    return res, float(score)


def dataset_entry(name, citation, X, y):
    res, score = fit_sm_logit(X, y)
    cols = list(X.columns)
    print(f"  {name}: n={len(y)} llf={float(res.llf)!r} max|score|={score:.2e}")
    for k in ["const"] + cols:
        print(f"    {k:>14s} {res.params[k]: .10f}  (se {res.bse[k]:.10f})")
    return res, {
        "name": name,
        "citation": citation,
        "columns": cols,
        "x": [[float(v) for v in row] for row in X.to_numpy(dtype=np.float64)],
        "y": [int(v) for v in y],
        "params": {k: float(res.params[k]) for k in ["const"] + cols},
        "bse": {k: float(res.bse[k]) for k in ["const"] + cols},
        "llf": float(res.llf),
    }


def make_published_logit():
    sp = sm.datasets.spector.load_pandas()
    sp_X = sp.exog[["GPA", "TUCE", "PSI"]].astype(float)
    sp_y = sp.endog.astype(int).to_numpy()
    sp_res, sp_entry = dataset_entry(
        "spector",
        "Spector, L. and Mazzeo, M. (1980). Probit Analysis and Economic Education. "
        "Journal of Economic Education, 11(2), 37-44. (statsmodels.datasets.spector)",
        sp_X, sp_y)
    known = {"const": -13.0213, "GPA": 2.8261, "TUCE": 0.0952, "PSI": 2.3787}
    for k, v in known.items():
        assert round(float(sp_res.params[k]), 4) == v, (k, sp_res.params[k], v)

    fd = sm.datasets.fair.load_pandas().data
    fcols = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
    fr_X = fd[fcols].astype(float)
    fr_y = (fd["affairs"] > 0).astype(int).to_numpy()
    _, fr_entry = dataset_entry(
        "fair",
        "Fair, R. C. (1978). A Theory of Extramarital Affairs. Journal of Political "
        "Economy, 86(1), 45-61. (statsmodels.datasets.fair; y = affairs > 0)",
        fr_X, fr_y)
    write_json("published_logit.json",
               {"generated_by": GENERATED_BY, "datasets": [sp_entry, fr_entry]})
    return sp_entry["params"], fr_entry["params"]


# --------------------------------------------------------------------------
# 3. Metrics
# --------------------------------------------------------------------------

def make_metrics():
    eps = float(np.finfo(np.float64).eps)
    cases = []

    rng = np.random.default_rng(501)
    p = rng.beta(2.0, 2.0, 500)
    y = (rng.random(500) < p).astype(int)
    cases.append(("continuous", y, p))

    rng = np.random.default_rng(502)
    p = np.array([round(float(v), 1) for v in rng.random(800)])
    y = (rng.random(800) < p).astype(int)
    cases.append(("ties_rounded", y, p))

    rng = np.random.default_rng(503)
    y = (rng.random(50) < 0.4).astype(int)
    y[0], y[1] = 0, 1  # guarantee both classes
    cases.append(("all_tied", y, np.full(50, 0.3)))

    rng = np.random.default_rng(504)
    p = rng.random(40)
    y = (rng.random(40) < p).astype(int)
    # exact 0.0 / 1.0 on correct and on wrong labels
    fixed = [(1.0, 1), (1.0, 1), (0.0, 0), (0.0, 0), (1.0, 0), (0.0, 1), (1.0, 0), (0.0, 1)]
    for i, (pv, yv) in enumerate(fixed):
        p[5 * i], y[5 * i] = pv, yv
    cases.append(("extremes", y, p))

    rng = np.random.default_rng(505)
    y = (rng.random(1000) < 0.03).astype(int)
    p = np.where(y == 1, rng.beta(2.0, 8.0, 1000), rng.beta(1.0, 12.0, 1000))
    p = np.array([round(float(v), 2) for v in p])
    cases.append(("imbalanced", y, p))

    out = []
    for name, y, p in cases:
        p = np.asarray(p, dtype=np.float64)
        assert p.min() >= 0.0 and p.max() <= 1.0 and 0 < y.sum() < len(y)
        auc = float(roc_auc_score(y, p))
        ll = float(log_loss(y, p))
        br = float(brier_score_loss(y, p))
        # independent re-computation of the documented clipping rule
        pc, qc = np.clip(p, eps, 1 - eps), np.clip(1.0 - p, eps, 1 - eps)
        ll_manual = float(np.mean(-np.where(y == 1, np.log(pc), np.log(qc))))
        assert math.isclose(ll, ll_manual, rel_tol=1e-12), (name, ll, ll_manual)
        assert math.isclose(br, float(np.mean((y - p) ** 2)), rel_tol=1e-12)
        if name == "all_tied":
            assert auc == 0.5
        print(f"  {name}: n={len(y)} pos={int(y.sum())} auc={auc:.6f} "
              f"log_loss={ll:.6f} brier={br:.6f}")
        out.append({"name": name, "y": [int(v) for v in y], "p": floats(p),
                    "auc": auc, "log_loss": ll, "brier": br})
    write_json("metrics.json", {
        "generated_by": GENERATED_BY,
        "log_loss_clip_eps": eps,
        "log_loss_clip_rule": (
            "1-D p is expanded to columns [1-p, p]; every entry is clipped to "
            "[eps, 1-eps] with eps = numpy.finfo(float64).eps (2**-52); no "
            "renormalisation; loss_i = -log(clip(p_i)) if y_i == 1 else "
            "-log(clip(1 - p_i)); log_loss = mean(loss_i)"),
        "cases": out,
    })


if __name__ == "__main__":
    print("generated_by:", GENERATED_BY)
    print("sklearn_logistic.json")
    make_sklearn_logistic()
    print("published_logit.json")
    make_published_logit()
    print("metrics.json")
    make_metrics()
