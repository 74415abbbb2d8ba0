#!/usr/bin/env python3
"""Side by side on the same streams: driftgauge's rule (the calibration harness's
`--streams` mode), alibi-detect's CVMDriftOnline and River's ADWIN.

Issue 11: "fewer false alarms than ADWIN and a delay no worse than alibi's at the same
run time"; "calibration cost for a rule with a 10,000-value reference and a 1,000-value
window at the default budget: <= 1 s (alibi-detect's configure step, measured beside it)".

Streams (seeded numpy, float64 .npy in a temp dir): a REF-value N(0,1) reference prefix,
then null values; change streams switch at PRE null values after the prefix to a mean
shift of +0.5 or +0.25 sd or 1.5x the variance, for POST values; null streams have NULL
null values after the prefix. Every detector sees the same values:
- driftgauge: `reference: {first: REF}`, `current: {last: 1000}` (or `--dg-current
  100,250,1000`: several sizes, the level split evenly across them), 50 values per
  evaluation (`--dg-per-eval`), each test at level 1/E (E = ERT / 50 evaluations between false alarms by
  the union bound, so its nominal ERT in values is the same as alibi's; the bound is
  conservative, so its real run time is longer). Alarm = entry into `drifted`.
- alibi-detect CVMDriftOnline(x_ref, ert=ERT, window_sizes=WS, n_bootstraps=B), fed
  instance by instance after the prefix; x_ref is the last ALIBI_REF values of the prefix
  (see --alibi-ref: alibi's configure step is quadratic in the reference size, measured
  below). After an alarm its state is reset (`reset_state()`), as its ERT is defined.
- River drift.ADWIN() (default delta=0.002), fed the prefix too (it has no reference:
  the prefix is its warm-up); alarms are counted after the prefix only.
A false alarm is an alarm on a null value after the prefix; the detection delay is the
number of changed values fed until the first alarm at or after the change.

Versions used (also in bench/requirements-peers.txt): Python 3.11.7, numpy 1.26.4,
alibi-detect 0.13.0 (core install, no TF/torch), river 0.23.0, numba 0.59.1.

Run from the repository root:
    CARGO_TARGET_DIR=/work/target-peers nice python3 bench/calibration_peers.py
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CHANGES = {
    "mean+0.5sd": lambda rng, n: rng.standard_normal(n) + 0.5,
    "mean+0.25sd": lambda rng, n: rng.standard_normal(n) + 0.25,
    "var x1.5": lambda rng, n: rng.standard_normal(n) * np.sqrt(1.5),
}
KEYS = {"mean+0.5sd": "m050", "mean+0.25sd": "m025", "var x1.5": "v150"}


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def make_streams(d, a):
    rng = np.random.default_rng(a.seed)
    meta = {}
    for change, f in CHANGES.items():
        for i in range(a.streams):
            x = np.concatenate([rng.standard_normal(a.ref + a.pre), f(rng, a.post)])
            name = f"{KEYS[change]}_{i:04d}"
            np.save(os.path.join(d, name + ".npy"), x.astype(np.float64))
            meta[name] = (change, a.ref + a.pre)
    for i in range(a.null_streams):
        x = rng.standard_normal(a.ref + a.null)
        name = f"null_{i:04d}"
        np.save(os.path.join(d, name + ".npy"), x)
        meta[name] = (None, None)
    return meta


def run_driftgauge(d, a, detector, evals_per_alarm):
    harness = a.dg_bin if a.dg_bin else "nice cargo bench --bench calibration --"
    cmd = (f"{harness} --streams={d} --reference={a.ref} "
           f"--current={a.dg_current} --per-eval={a.dg_per_eval} --evals-per-alarm={evals_per_alarm:g} --detector={detector}")
    t = time.time()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=a.repo)
    if p.returncode != 0:
        sys.exit(f"{cmd}\n{p.stderr[-3000:]}")
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if parts and (parts[0].startswith(tuple(KEYS.values())) or parts[0].startswith("null_")):
            out[parts[0]] = [int(v) for v in parts[1:]]
    return out, time.time() - t, cmd


def dg_window(a):
    sizes = sorted(int(m) for m in str(a.dg_current).split(","))
    return str(sizes[0]) if len(sizes) == 1 else "[" + ", ".join(map(str, sizes)) + "]"


def run_adwin(d, names, a, meta):
    from river import drift
    out = {}
    t = time.time()
    for name in names:
        x = np.load(os.path.join(d, name + ".npy"))
        change = meta[name][1]
        det = drift.ADWIN()
        alarms = []
        for i, v in enumerate(x.tolist()):
            det.update(v)
            if det.drift_detected and i + 1 > a.ref:
                alarms.append(i + 1)
                if change is not None and i + 1 > change:
                    break  # the delay is known
        out[name] = alarms
    return out, time.time() - t


def alibi_detector(a, x_ref):
    from alibi_detect.cd import CVMDriftOnline
    return CVMDriftOnline(x_ref, ert=a.ert, window_sizes=a.ws, n_bootstraps=a.bootstraps,
                          batch_size=a.batch, verbose=False)


_ALIBI = {}


def _alibi_stream(args):
    d, name, change, a = args
    det = _ALIBI["det"]
    x = np.load(os.path.join(d, name + ".npy"))
    # The thresholds depend only on the reference size, the windows and the ERT (rank
    # statistics: alibi simulates Gaussian streams, not the reference), so one configuration
    # serves every stream; each stream's own reference is swapped in.
    det.x_ref = x[a.ref - a.alibi_ref:a.ref].reshape(-1, 1)
    det._configure_ref()
    det.reset_state()
    alarms = []
    for i in range(a.ref, len(x)):
        if det.predict(x[i:i + 1], return_test_stat=False)["data"]["is_drift"]:
            alarms.append(i + 1)
            if change is not None and i + 1 > change:
                break  # the delay is known
            det.reset_state()
    return name, alarms


def run_alibi(d, names, a, meta):
    import multiprocessing as mp
    x0 = np.load(os.path.join(d, names[0] + ".npy"))
    t0 = time.time()
    _ALIBI["det"] = alibi_detector(a, x0[a.ref - a.alibi_ref:a.ref])
    cfg = time.time() - t0
    t0 = time.time()
    with mp.get_context("fork").Pool(a.jobs) as pool:
        out = dict(pool.map(_alibi_stream, [(d, n, meta[n][1], a) for n in names], chunksize=1))
    return out, cfg, time.time() - t0


def summarise(res, meta, a):
    """Rows: false alarms on null streams, then per change the detection shares and delay."""
    meta = {n: meta[n] for n in res}  # a detector may run on a subset (alibi)
    nulls = [n for n, (c, _) in meta.items() if c is None]
    fa = sum(len(res[n]) for n in nulls)
    null_values = len(nulls) * a.null
    row = {"fa_per_1e6": fa / null_values * 1e6, "fa_per_stream": fa / len(nulls),
           "fa_streams": sum(1 for n in nulls if res[n]) / len(nulls), "n_null": len(nulls)}
    # Pre-change false alarms on change streams (PRE null values each) count too.
    pre = sum(sum(1 for v in res[n] if v <= meta[n][1]) for n in meta if meta[n][0])
    row["fa_pre"] = pre
    for change in CHANGES:
        names = [n for n in meta if meta[n][0] == change]
        delays = []
        for n in names:
            after = [v - meta[n][1] for v in res[n] if v > meta[n][1]]
            delays.append(after[0] if after else np.inf)
        delays = np.array(delays, dtype=float)
        row[change] = (np.mean(delays <= 2000), np.mean(delays <= 5000), np.median(delays), len(names))
    return row


def fmt_delay(v):
    return "> horizon" if not np.isfinite(v) else f"{v:.0f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--streams", type=int, default=100, help="change streams a row")
    p.add_argument("--null-streams", type=int, default=30)
    p.add_argument("--ref", type=int, default=10_000)
    p.add_argument("--pre", type=int, default=1_000, help="null values after the prefix, before the change")
    p.add_argument("--post", type=int, default=5_000, help="changed values (the horizon)")
    p.add_argument("--null", type=int, default=20_000, help="null values after the prefix, null streams")
    p.add_argument("--ert", type=float, default=2_000, help="expected run time, instances")
    p.add_argument("--ws", type=int, nargs="+", default=[100, 250],
                   help="alibi window sizes (a 1,000 window costs ~0.6-6 s a bootstrap here: see the cost table)")
    p.add_argument("--alibi-ref", type=int, default=1_000, help="alibi reference size (last N of the prefix)")
    p.add_argument("--bootstraps", type=int, default=3_000,
                   help="alibi n_bootstraps (>= ERT / (1 - 1/ERT)^(2 max(ws) - 1) or its quantile check refuses)")
    p.add_argument("--alibi-streams", type=int, default=30,
                   help="change streams a row alibi runs (the first N; ~3 ms an instance)")
    p.add_argument("--alibi-null-streams", type=int, default=5, help="null streams alibi runs")
    p.add_argument("--jobs", type=int, default=2, help="alibi worker processes")
    p.add_argument("--batch", type=int, default=64, help="alibi batch_size")
    p.add_argument("--cost-bootstraps", type=int, default=4,
                   help="bootstraps timed for alibi's configure cost at a 10,000-value reference")
    p.add_argument("--dg-current", default="1000",
                   help="driftgauge's current window: last: N, or several sizes N1,N2,.. (the level "
                        "split evenly across them, drifted when any size is)")
    p.add_argument("--dg-per-eval", type=int, default=50,
                   help="values per driftgauge evaluation (a test every this many values)")
    p.add_argument("--skip-alibi", action="store_true")
    p.add_argument("--skip-adwin", action="store_true")
    p.add_argument("--dg-detectors", default="ks,anderson",
                   help="driftgauge detectors run at the nominal ERT (comma-separated)")
    p.add_argument("--dg-bin", default="",
                   help="run this calibration harness binary instead of `cargo bench --bench calibration`")
    p.add_argument("--skip-cost", action="store_true")
    p.add_argument("--dg-extra", type=float, nargs="*", default=[],
                   help="more driftgauge KS runs at these E (evaluations per false alarm), e.g. to match "
                        "a peer's measured run time rather than the nominal one")
    a = p.parse_args()

    import alibi_detect
    import river
    versions = (f"Python {sys.version.split()[0]}, numpy {np.__version__}, alibi-detect "
                f"{alibi_detect.__version__}, river {river.__version__}, "
                f"rustc {sh('rustc --version').split()[1]}, driftgauge {sh(f'git -C {a.repo} rev-parse --short HEAD')}")
    print(f"## Side by side: driftgauge, alibi-detect CVMDriftOnline, River ADWIN\n")
    print(f"Command: `CARGO_TARGET_DIR={os.environ.get('CARGO_TARGET_DIR', 'target')} nice python3 bench/calibration_peers.py {' '.join(sys.argv[1:])}`  ")
    print(f"Versions: {versions}  ")
    print(f"Load at start: `{sh('uptime')}`, {os.cpu_count()} cores  ")
    print(f"Streams: {a.streams} a change, {a.null_streams} null; reference prefix {a.ref}, change after "
          f"{a.pre} null values, horizon {a.post}; null streams {a.null} values after the prefix. "
          f"Nominal ERT {a.ert:g} instances (driftgauge: E = {a.ert / a.dg_per_eval:g} evaluations x "
          f"{a.dg_per_eval} values; "
          f"alibi: ert={a.ert:g}, window_sizes={a.ws}, n_bootstraps={a.bootstraps}, "
          f"reference = last {a.alibi_ref} values of the prefix).\n", flush=True)

    d = tempfile.mkdtemp(prefix="dg-peers-")
    try:
        meta = make_streams(d, a)
        names = sorted(meta)
        results, notes = {}, []
        nominal = [(det, a.ert / a.dg_per_eval) for det in a.dg_detectors.split(",") if det]
        for det, e in nominal + [("ks", e) for e in a.dg_extra]:
            r, secs, cmd = run_driftgauge(d, a, det, e)
            step = "" if a.dg_per_eval == 50 else f", {a.dg_per_eval}/eval"
            results[f"driftgauge {det} last: {dg_window(a)}, E={e:g}{step}"] = r
            notes.append(f"driftgauge {det}: `{cmd}` ({secs:.0f} s incl. cargo)")
            print(f"- {notes[-1]}", flush=True)
        if not a.skip_adwin:
            r, secs = run_adwin(d, names, a, meta)
            results["River ADWIN (delta 0.002)"] = r
            print(f"- ADWIN: {secs:.0f} s", flush=True)
        if not a.skip_alibi:
            sub = [n for n in names if (n.startswith("null_") and int(n[5:]) < a.alibi_null_streams)
                   or (not n.startswith("null_") and int(n[5:]) < a.alibi_streams)]
            r, cfg, secs = run_alibi(d, sub, a, meta)
            results[f"alibi CVMDriftOnline ws={a.ws}, ref {a.alibi_ref}"] = r
            print(f"- alibi: configure {cfg:.1f} s (reference {a.alibi_ref}, {a.bootstraps} bootstraps), "
                  f"all streams {secs:.0f} s", flush=True)

        print(f"\n### False alarms (nominal ERT {a.ert:g} instances; null streams of {a.null} values "
              f"after the prefix)\n")
        print("| detector | null streams | false alarms / 10^6 null values | per stream | streams with one | "
              "pre-change alarms on change streams |")
        print("|---|---:|---:|---:|---:|---:|")
        rows = {k: summarise(v, meta, a) for k, v in results.items()}
        for k, row in rows.items():
            print(f"| {k} | {row['n_null']} | {row['fa_per_1e6']:.0f} | {row['fa_per_stream']:.2f} | "
                  f"{row['fa_streams']:.2f} | {row['fa_pre']} |")
        print(f"\n### Detection ({a.streams} streams a change; delay in changed values)\n")
        print("| detector | change | streams | within 2,000 | within 5,000 | median delay |")
        print("|---|---|---:|---:|---:|---:|")
        for k, row in rows.items():
            for change in CHANGES:
                s2, s5, med, cnt = row[change]
                print(f"| {k} | {change} | {cnt} | {s2:.2f} | {s5:.2f} | {fmt_delay(med)} |")
        sys.stdout.flush()
    finally:
        shutil.rmtree(d, ignore_errors=True)

    if not a.skip_cost:
        calibration_cost(a)
    print(f"\nLoad at end: `{sh('uptime')}`")


def calibration_cost(a):
    """driftgauge check on a rule with a 10,000-value file reference and `last: 1000` at the
    default budget (the whole process: its level is analytic), against alibi's configure
    step for the same reference size and a 1,000 window at ERT a.ert."""
    from alibi_detect.cd import cvm_online
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(a.repo, "target")),
                          "release", "driftgauge")
    d = tempfile.mkdtemp(prefix="dg-check-")
    try:
        rng = np.random.default_rng(a.seed + 1)
        np.savetxt(os.path.join(d, "ref.txt"), rng.standard_normal(10_000), fmt="%.9f")
        with open(os.path.join(d, "rules.yml"), "w") as f:
            f.write("groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n"
                    "        detector: ks\n        series: feature_value\n"
                    "        reference: {file: ref.txt}\n        current: {last: 1000}\n")
        runs = []
        for _ in range(5):
            t = time.time()
            p = subprocess.run([binary, "check", os.path.join(d, "rules.yml")], capture_output=True,
                               text=True, cwd=d)
            runs.append(time.time() - t)
        dg = sorted(runs)[2]
        check_out = (p.stdout + p.stderr).strip().splitlines()
    finally:
        shutil.rmtree(d, ignore_errors=True)

    # alibi: the constructor's cost is n_bootstraps simulated streams of n + 2*max(ws) - 1
    # values (its _simulate_streams), then _configure_ref. The simulation is timed here on
    # a few bootstraps with alibi's own code (the same numba function, the same batches),
    # and scaled to the n_bootstraps the ERT needs; a full run would take hours here.
    n, ws = 10_000, np.asarray([1000])
    t_max = 2 * int(ws.max()) - 1
    cvm_online._ids_to_stats(*(lambda ids: (ids[:, :50, :], ids[:, 50:, :]))(
        np.random.randn(1, 150)[:, None, :] >= np.random.randn(1, 150)[:, :, None]), np.asarray([10]))  # compile
    t = time.time()
    xs = np.random.randn(a.cost_bootstraps, n + t_max)
    ids = xs[:, None, :] >= xs[:, :, None]
    cvm_online._ids_to_stats(ids[:, :n, :], ids[:, n:, :], ws)
    per = (time.time() - t) / a.cost_bootstraps
    del ids
    x_ref = np.random.randn(n, 1)
    t = time.time()
    _ = np.sum(x_ref[None, :, :] >= x_ref[:, None, :], axis=0) / n  # _configure_ref
    ref_secs = time.time() - t
    survive = (1 - 1 / a.ert) ** t_max
    need = a.ert / survive  # fewer and its own quantile check refuses
    print(f"\n### Calibration cost: 10,000-value reference, 1,000-value window, one rule\n")
    print("| | time | how |")
    print("|---|---:|---|")
    print(f"| driftgauge `check` (default budget 1/30d, whole process, median of 5) | {dg * 1000:.0f} ms | "
          f"`{binary} check rules.yml` |")
    print(f"| alibi CVMDriftOnline configure, ert={a.ert:g}, window_sizes=[1000] | "
          f"{per:.2f} s per bootstrap stream | {a.cost_bootstraps} of alibi's simulated streams "
          f"(`_ids_to_stats`, {n}+{t_max} values each) timed |")
    print(f"| ... at its minimum n_bootstraps ({need:.0f}: fewer streams than ERT survive t_max and its quantile check refuses) | "
          f"{need * per / 60:.0f} min | extrapolated, linear in n_bootstraps |")
    print(f"| ... at its default n_bootstraps (10,000) | {10_000 * per / 60:.0f} min | extrapolated |")
    print(f"| ... at 10 x ERT ({10 * a.ert:.0f}, its docstring's advice) | {10 * a.ert * per / 60:.0f} min | extrapolated |")
    print(f"| ... plus `_configure_ref` (10,000 x 10,000 comparisons) | {ref_secs:.2f} s | timed |")
    print(f"| ... at the default budget's ERT (30 d at 50 values / 15 s = {30 * 86400 / 15 * 50:.3g} instances) | "
          f"not configurable | needs > {30 * 86400 / 15 * 50:.3g} simulated streams |")
    print("\n`driftgauge check` said:\n")
    for line in check_out[:12]:
        print(f"    {line}")


if __name__ == "__main__":
    main()
