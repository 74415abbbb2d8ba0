"""driftgauge's detectors against live SciPy on fresh random cases.

    python3 bench/scipy_parity.py [--cases N] [--seed S] [--out DIR] [--keep]

Draws N random cases per detector family (sizes, ties, weights, zeros, methods, variants,
lambdas, magnitudes), computes SciPy's answers in-process, writes them as vector files in the
schema of tests/data/reference/ (one JSON file per family), then runs
`cargo run --release --example scipy_parity` on them, which prints the worst absolute and
relative error of every field and any value outside the tolerance (statistics and distances
1e-12 relative to max(1, |expected|); p-values and derived values 1e-12 absolute or 1e-9
relative). Exit status: the example's (1 on any mismatch).

Needs numpy and scipy (the reference vectors were made with numpy 2.4.6 and scipy 1.17.1; the
versions in use are printed). The Rust test suite does not depend on this script.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import scipy
from scipy import stats
from scipy.spatial import distance as sp_distance


def floats(a):
    return [float(x) for x in np.asarray(a, dtype=float).ravel()]


def sample(rng, n, kind):
    """One sample of n values: continuous, rounded (ties), integers, or wide magnitudes."""
    if kind == "normal":
        return rng.normal(rng.normal(0, 0.5), rng.uniform(0.5, 2.0), n)
    if kind == "ties":
        return np.round(rng.normal(0, 1, n) * 4) / 4
    if kind == "poisson":
        return rng.poisson(rng.uniform(1, 6), n).astype(float)
    if kind == "wide":
        return rng.normal(0, 1, n) * 10.0 ** rng.integers(-100, 100)
    raise ValueError(kind)


def pick(rng, options):
    return options[int(rng.integers(len(options)))]


def gen_cvm(rng, i):
    method = pick(rng, ["auto", "auto", "exact", "asymptotic"])
    if method == "exact":
        n, m = int(rng.integers(2, 13)), int(rng.integers(2, 13))
    elif rng.uniform() < 0.4:
        n, m = int(rng.integers(2, 21)), int(rng.integers(2, 21))
    else:
        n, m = int(rng.integers(2, 3000)), int(rng.integers(2, 3000))
    kind = pick(rng, ["normal", "ties", "poisson"])
    x = sample(rng, n, kind)
    y = sample(rng, m, kind) + pick(rng, [0.0, 0.0, 0.2, 1.0])
    r = stats.cramervonmises_2samp(x, y, method=method)
    exact = method == "exact" or (method == "auto" and max(n, m) <= 20)
    return {"name": f"cvm_{i}_{kind}_{n}x{m}_{method}", "x": floats(x), "y": floats(y),
            "method": method, "statistic": float(r.statistic), "pvalue": float(r.pvalue),
            "method_used": "exact" if exact else "asymptotic"}


def gen_anderson(rng, i):
    k = int(rng.integers(2, 6))
    kind = pick(rng, ["normal", "ties", "poisson"])
    variant = pick(rng, ["midrank", "right", "continuous"])
    samples = [sample(rng, int(rng.integers(3, 600)), kind) + pick(rng, [0.0, 0.0, 0.15, 0.5])
               for _ in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.anderson_ksamp(samples, variant=variant)
        legacy = stats.anderson_ksamp(samples, midrank=True)  # critical values
    crit = [float(c) for c in legacy.critical_values]
    limited = None
    if r.statistic < min(crit):
        limited = "capped"
    elif r.statistic > max(crit):
        limited = "floored"
    return {"name": f"ad_{i}_{kind}_k{k}_{variant}", "samples": [floats(s) for s in samples],
            "variant": variant, "statistic": float(r.statistic), "pvalue": float(r.pvalue),
            "pvalue_limited": limited, "critical_values": crit}


def gen_distance(rng, i, energy):
    n, m = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
    kind = pick(rng, ["normal", "ties", "poisson", "wide"])
    u = sample(rng, n, kind)
    v = sample(rng, m, kind) + (pick(rng, [0.0, 0.3]) * (np.std(u) if n > 1 else 1.0))
    uw = vw = None
    if rng.uniform() < 0.4:
        uw = rng.uniform(0, 3, n) * (rng.uniform(size=n) > 0.1)
        if uw.sum() == 0:
            uw[0] = 1.0
    if rng.uniform() < 0.4:
        vw = rng.uniform(0, 3, m) * (rng.uniform(size=m) > 0.1)
        if vw.sum() == 0:
            vw[0] = 1.0
    f = stats.energy_distance if energy else stats.wasserstein_distance
    d = f(u, v, uw, vw)
    return {"name": f"{'energy' if energy else 'w1'}_{i}_{kind}_{n}x{m}",
            "u_values": floats(u), "v_values": floats(v),
            "u_weights": None if uw is None else floats(uw),
            "v_weights": None if vw is None else floats(vw), "distance": float(d)}


LAMBDAS = [None, "log-likelihood", "freeman-tukey", "mod-log-likelihood", "neyman",
           "cressie-read", "pearson", 0.5, 1.5, -0.3]


def gen_chi2(rng, i):
    r, k = int(rng.integers(1, 5)), int(rng.integers(1, 21))
    scale = pick(rng, [5, 50, 1000, 10**6])
    t = rng.poisson(rng.uniform(0.2, 1.0, (r, k)) * scale).astype(float)
    if rng.uniform() < 0.15:
        t = t + np.round(rng.uniform(0, 1, (r, k)), 2)  # fractional counts
    t[:, t.sum(axis=0) == 0] = 1.0  # no empty column
    t[t.sum(axis=1) == 0, :] = 1.0  # no empty row
    lam = pick(rng, LAMBDAS)
    correction = bool(rng.uniform() < 0.5)
    with np.errstate(all="ignore"):
        res = stats.chi2_contingency(t, correction=correction, lambda_=lam)
    if not (math.isfinite(res.statistic) and math.isfinite(res.pvalue)):
        return None  # NaN or inf: a zero count with a negative lambda (an error in driftgauge)
    return {"name": f"chi2_{i}_{r}x{k}_{lam}_{correction}", "observed": [floats(row) for row in t],
            "correction": correction, "lambda_": lam, "statistic": float(res.statistic),
            "pvalue": float(res.pvalue), "dof": int(res.dof),
            "expected_freq": [floats(row) for row in res.expected_freq]}


def gen_js(rng, i):
    n = int(rng.integers(1, 60))
    scale = pick(rng, [1.0, 100.0, 1e6, 1e15])
    p = rng.uniform(0, 1, n) * scale * (rng.uniform(size=n) > 0.2)
    q = rng.uniform(0, 1, n) * scale * (rng.uniform(size=n) > 0.2)
    if rng.uniform() < 0.2:
        q = p * (1 + rng.normal(0, 1e-3, n))  # near-identical
        q = np.abs(q)
    if p.sum() == 0:
        p[0] = 1.0
    if q.sum() == 0:
        q[-1] = 1.0
    d2 = sp_distance.jensenshannon(p, q, 2.0)
    de = sp_distance.jensenshannon(p, q)
    if not (math.isfinite(d2) and math.isfinite(de)):
        return None  # SciPy's NaN when the divergence rounds below 0 (clamped here)
    return {"name": f"js_{i}_{n}", "p": floats(p), "q": floats(q),
            "distance_base2": float(d2), "distance_natural": float(de)}


def gen_fdr(rng, i):
    m = int(rng.integers(1, 300))
    ps = rng.uniform(0, 1, m) ** pick(rng, [1, 3, 8])
    if rng.uniform() < 0.3:
        ps = np.round(ps, 2)  # ties, zeros, ones
    method = pick(rng, ["bh", "by"])
    adj = stats.false_discovery_control(ps, method=method)
    return {"name": f"fdr_{i}_{m}_{method}", "ps": floats(ps), "method": method,
            "adjusted": floats(adj)}


def gen_ks_binned(rng, i):
    """Bucket counts of two samples; SciPy's ks_2samp (asymp) on the data with every
    observation at its bucket's upper edge: what `ks` on a histogram must give."""
    k = int(rng.integers(2, 30))
    edges = np.sort(rng.uniform(-3, 3, k))
    scale = pick(rng, [3, 30, 300, 3000])
    shift = pick(rng, [0.0, 0.0, 0.1, 0.5])
    a = rng.poisson(scale * np.exp(-edges ** 2 / 2))
    b = rng.poisson(scale * np.exp(-(edges - shift) ** 2 / 2))
    if a.sum() == 0 or b.sum() == 0:
        return None
    x, y = np.repeat(edges, a), np.repeat(edges, b)
    with np.errstate(all="ignore"):
        res = stats.ks_2samp(x, y, method="asymp")
    if not (math.isfinite(res.statistic) and math.isfinite(res.pvalue)):
        return None  # one observation a side: SciPy's asymptotic p divides by zero (NaN)
    return {"name": f"ks_binned_{i}_{k}_{scale}", "reference_counts": floats(a),
            "current_counts": floats(b), "statistic": float(res.statistic),
            "pvalue": float(res.pvalue)}


FAMILIES = {
    "ks_binned": gen_ks_binned,
    "cramervonmises_2samp": gen_cvm,
    "anderson_ksamp": gen_anderson,
    "wasserstein": lambda rng, i: gen_distance(rng, i, False),
    "energy_distance": lambda rng, i: gen_distance(rng, i, True),
    "power_divergence": gen_chi2,
    "jensenshannon": gen_js,
    "false_discovery": gen_fdr,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200, help="cases per family")
    ap.add_argument("--seed", type=int, default=20251202)
    ap.add_argument("--out", help="directory for the vector files (default: a temporary one)")
    args = ap.parse_args()

    print(f"numpy {np.__version__}, scipy {scipy.__version__}, python {sys.version.split()[0]}, "
          f"{args.cases} cases a family, seed {args.seed}", flush=True)
    out = args.out or tempfile.mkdtemp(prefix="scipy_parity_")
    os.makedirs(out, exist_ok=True)
    paths = []
    for family, gen in FAMILIES.items():
        rng = np.random.default_rng([args.seed, len(paths)])
        cases, skipped = [], 0
        while len(cases) < args.cases:
            case = gen(rng, len(cases) + skipped)
            if case is None:
                skipped += 1
                continue
            cases.append(case)
        path = os.path.join(out, f"{family}_live.json")
        with open(path, "w") as fh:
            json.dump({"family": family, "set": "live", "case_count": len(cases),
                       "cases": cases}, fh)
        print(f"{family}: {len(cases)} cases ({skipped} skipped where SciPy gives NaN/inf)",
              flush=True)
        paths.append(path)

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    cmd = ["cargo", "run", "--release", "--quiet", "--example", "scipy_parity", "--", *paths]
    return subprocess.run(cmd, cwd=root).returncode


if __name__ == "__main__":
    sys.exit(main())
