"""driftgauge eval (a whole process) against SciPy (in-process), same arrays: ks_2samp, and
cramervonmises_2samp, anderson_ksamp, wasserstein_distance and energy_distance on 10^6 vs
10^6.

Run through bench/compare.sh, which builds the binary and provides numpy and scipy. Each row
writes its two arrays as .npy files, then alternates the two contenders `--runs` times
(after one warm-up each) and reports medians. scipy is timed around the `ks_2samp` call
alone, on arrays already in memory; driftgauge from process start to exit, reading both
files, as `time` would see it. In the rows of the other detectors each timed call starts
after a pause of `PAUSE` seconds, on an idle machine: SciPy's `wasserstein_distance` and `energy_distance` end in a BLAS dot product,
after which OpenBLAS's helper threads spin for a while on the other core (measured: a
driftgauge run started right after one took 66 ms, 39 ms after a 0.3 s pause, and 39 ms with
`OPENBLAS_NUM_THREADS=1`). A row fails (exit status 1) unless the two agree on the
statistic (1e-12 absolute), the p-value (1e-9 relative or 1e-12 absolute), the location
(==) and the sign, the contract of ../shared/DESIGN.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy
from scipy import stats

# Seconds of quiet before each timed call (see above).
PAUSE = 0.3

ROWS = {
    # name: (label, n, m, shift of the current sample in sd, alternative, method, seed)
    "1e6-null": ("KS 10^6 vs 10^6, two-sided auto, same distribution", 10**6, 10**6, 0.0, "two-sided", "auto", 1),
    "1e6-drift": ("KS 10^6 vs 10^6, two-sided auto, shift 0.01 sd", 10**6, 10**6, 0.01, "two-sided", "auto", 2),
    "1e5-drift": ("KS 10^5 vs 10^5, two-sided auto, shift 0.02 sd", 10**5, 10**5, 0.02, "two-sided", "auto", 3),
    "exact": ("KS 9999 vs 9998, exact p, two-sided, shift 0.05 sd", 9999, 9998, 0.05, "two-sided", "exact", 4),
}

# The other raw-value detectors: name: (label, detector, n, m, shift, seed).
OTHER_ROWS = {
    "cvm-1e6": ("CvM 10^6 vs 10^6, asymptotic p, shift 0.005 sd", "cvm", 10**6, 10**6, 0.005, 5),
    "anderson-1e6": ("Anderson-Darling 10^6 vs 10^6 (midrank), shift 0.005 sd", "anderson", 10**6, 10**6, 0.005, 6),
    "wasserstein-1e6": ("Wasserstein 10^6 vs 10^6, shift 0.01 sd", "wasserstein", 10**6, 10**6, 0.01, 7),
    "energy-1e6": ("Energy distance 10^6 vs 10^6, shift 0.01 sd", "energy", 10**6, 10**6, 0.01, 8),
}


def scipy_other(detector, a, b):
    """(statistic, p-value or None) as SciPy gives them."""
    if detector == "cvm":
        r = stats.cramervonmises_2samp(a, b)
        return float(r.statistic), float(r.pvalue)
    if detector == "anderson":
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = stats.anderson_ksamp([a, b])
        return float(r.statistic), float(r.pvalue)
    if detector == "wasserstein":
        return float(stats.wasserstein_distance(a, b)), None
    return float(stats.energy_distance(a, b)), None


def close(x, y, rel):
    return abs(x - y) <= 1e-12 or abs(x - y) <= rel * abs(y)


def run_other_row(name, binary, runs, data_dir):
    label, detector, n, m, shift, seed = OTHER_ROWS[name]
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    b = rng.normal(shift, 1.0, m)
    pa = os.path.join(data_dir, f"{name}-reference.npy")
    pb = os.path.join(data_dir, f"{name}-current.npy")
    np.save(pa, a)
    np.save(pb, b)
    cmd = [binary, "eval", f"--detector={detector}", f"--reference={pa}", f"--current={pb}",
           "--output=json"]

    def ours():
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return time.perf_counter() - t, json.loads(out)

    def theirs():
        t = time.perf_counter()
        r = scipy_other(detector, a, b)
        return time.perf_counter() - t, r

    ours()
    theirs()
    t_ours, t_theirs = [], []
    for _ in range(runs):
        time.sleep(PAUSE)
        dt, res_ours = ours()
        t_ours.append(dt)
        time.sleep(PAUSE)
        dt, res_theirs = theirs()
        t_theirs.append(dt)
    stat, p = res_theirs
    # Statistics to 1e-12 absolute or 1e-9 relative (sums of 10^6 terms in another order),
    # p-values to 1e-9 relative or 1e-12 absolute.
    ok = close(res_ours["statistic"], stat, 1e-9) and (
        p is None or (res_ours["p_value"] is not None and close(res_ours["p_value"], p, 1e-9)))
    detail = {"statistic": res_ours["statistic"], "p_value": res_ours["p_value"],
              "scipy_statistic": stat, "scipy_p_value": p}
    return label, statistics.median(t_ours), statistics.median(t_theirs), ok, detail, None


def agree(ours, theirs):
    d_ok = abs(ours["statistic"] - theirs.statistic) <= 1e-12
    p, q = ours["p_value"], float(theirs.pvalue)
    p_ok = abs(p - q) <= 1e-12 or abs(p - q) <= 1e-9 * abs(q)
    loc_ok = ours["statistic_location"] == float(theirs.statistic_location)
    sign_ok = ours["statistic_sign"] == int(theirs.statistic_sign)
    return d_ok and p_ok and loc_ok and sign_ok


def run_row(name, binary, runs, data_dir):
    label, n, m, shift, alternative, method, seed = ROWS[name]
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    b = rng.normal(shift, 1.0, m)
    pa = os.path.join(data_dir, f"{name}-reference.npy")
    pb = os.path.join(data_dir, f"{name}-current.npy")
    np.save(pa, a)
    np.save(pb, b)
    cmd = [binary, "eval", "--detector=ks", f"--reference={pa}", f"--current={pb}",
           f"--alternative={alternative}", f"--method={method}", "--output=json"]

    def ours():
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return time.perf_counter() - t, json.loads(out)

    def theirs():
        t = time.perf_counter()
        r = stats.ks_2samp(a, b, alternative=alternative, method=method)
        return time.perf_counter() - t, r

    ours()
    theirs()
    t_ours, t_theirs = [], []
    for _ in range(runs):
        dt, res_ours = ours()
        t_ours.append(dt)
        dt, res_theirs = theirs()
        t_theirs.append(dt)
    ok = agree(res_ours, res_theirs)
    return label, statistics.median(t_ours), statistics.median(t_theirs), ok, res_ours, res_theirs


def fmt_ms(s):
    return f"{s * 1e3:.1f} ms" if s >= 0.01 else f"{s * 1e3:.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/driftgauge")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--rows", default=",".join(list(ROWS) + list(OTHER_ROWS)))
    ap.add_argument("--data", default="target/bench-data")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.data, exist_ok=True)
    results = [
        run_other_row(name, args.bin, args.runs, args.data) if name in OTHER_ROWS
        else run_row(name, args.bin, args.runs, args.data)
        for name in args.rows.split(",")
    ]

    print(f"numpy {np.__version__}, scipy {scipy.__version__}, {os.cpu_count()} CPUs; "
          f"median of {args.runs} alternating runs each")
    print()
    print("| what | driftgauge (process) | scipy (in-process) | ratio |")
    print("|---|---:|---:|---:|")
    for label, ours, theirs, ok, _, _ in results:
        mark = "" if ok else " **DISAGREE**"
        print(f"| {label}{mark} | {fmt_ms(ours)} | {fmt_ms(theirs)} | {theirs / ours:.1f}x |")
    print()
    bad = [r for r in results if not r[3]]
    if args.verbose or bad:
        for label, _, _, ok, o, t in results:
            if t is None:
                print(f"{label}: {o}")
                continue
            print(f"{label}: driftgauge D={o['statistic']!r} p={o['p_value']!r} "
                  f"loc={o['statistic_location']!r} sign={o['statistic_sign']}; scipy D={float(t.statistic)!r} "
                  f"p={float(t.pvalue)!r} loc={float(t.statistic_location)!r} sign={int(t.statistic_sign)}")
    if bad:
        print(f"{len(bad)} row(s) disagree with scipy", file=sys.stderr)
        sys.exit(1)
    print("Every row agrees with SciPy: KS rows the same D (1e-12 abs), p (1e-9 rel), location and sign;"
          " the others the statistic (1e-12 abs or 1e-9 rel) and p (1e-9 rel or 1e-12 abs).")


if __name__ == "__main__":
    main()
