"""driftgauge eval (a whole process) against scipy.stats.ks_2samp (in-process), same arrays.

Run through bench/compare.sh, which builds the binary and provides numpy and scipy. Each row
writes its two arrays as .npy files, then alternates the two contenders `--runs` times
(after one warm-up each) and reports medians. scipy is timed around the `ks_2samp` call
alone, on arrays already in memory; driftgauge from process start to exit, reading both
files, as `time` would see it. A row fails (exit status 1) unless the two agree on the
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

ROWS = {
    # name: (label, n, m, shift of the current sample in sd, alternative, method, seed)
    "1e6-null": ("KS 10^6 vs 10^6, two-sided auto, same distribution", 10**6, 10**6, 0.0, "two-sided", "auto", 1),
    "1e6-drift": ("KS 10^6 vs 10^6, two-sided auto, shift 0.01 sd", 10**6, 10**6, 0.01, "two-sided", "auto", 2),
    "1e5-drift": ("KS 10^5 vs 10^5, two-sided auto, shift 0.02 sd", 10**5, 10**5, 0.02, "two-sided", "auto", 3),
    "exact": ("KS 9999 vs 9998, exact p, two-sided, shift 0.05 sd", 9999, 9998, 0.05, "two-sided", "exact", 4),
}


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
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--data", default="target/bench-data")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.data, exist_ok=True)
    results = [run_row(name, args.bin, args.runs, args.data) for name in args.rows.split(",")]

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
            print(f"{label}: driftgauge D={o['statistic']!r} p={o['p_value']!r} "
                  f"loc={o['statistic_location']!r} sign={o['statistic_sign']}; scipy D={float(t.statistic)!r} "
                  f"p={float(t.pvalue)!r} loc={float(t.statistic_location)!r} sign={int(t.statistic_sign)}")
    if bad:
        print(f"{len(bad)} row(s) disagree with scipy", file=sys.stderr)
        sys.exit(1)
    print("Every row: same D (1e-12 abs), p (1e-9 rel), location (==) and sign as scipy.")


if __name__ == "__main__":
    main()
