"""`driftgauge eval` on datasets against a scipy `ks_2samp` loop and Evidently, same data.

Run through bench/datasets.sh, which builds the binary and provides numpy, scipy and pyarrow
(and, in a venv of its own, Evidently when it installs). Each row generates a reference and
a current table with numpy (every tenth column of the current one shifted by 0.05 sd), writes
them as 2-D .npy and as Parquet (pyarrow, Snappy), then times, alternating, `--runs` times
after one warm-up:

- driftgauge: `eval --reference=A --current=B --output=json --correction=none` as a whole
  process (start, read both files, test every column, print, exit), wall clock and peak RSS
  (from wait4);
- scipy: a loop of `scipy.stats.ks_2samp(a[:, j], b[:, j])` over the columns, in-process, on
  arrays already in memory (reading not counted);
- Evidently (`--evidently PYTHON`): `Report([DataDriftPreset()]).run(cur, ref)` on pandas
  frames already in memory, in its own process (its import and the frames' building not
  counted), once.

A row fails (exit 1) unless driftgauge and scipy agree on every column's statistic (1e-12
absolute) and p-value (1e-9 relative or 1e-12 absolute). The `3m` row (1,000 columns × 3M
rows, Parquet only, values rounded to 0.01 as real features are, so pyarrow's dictionary
encoding keeps the files at a few GB) times driftgauge alone and checks 20 columns against
scipy (the median of `--runs-3m` runs; `--keep` keeps the two files, and reuses them when
they are there).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import scipy
from scipy import stats

ROWS = {
    # name: (label, columns, rows)
    "100x100k": ("100 columns × 100k rows against 100 × 100k", 100, 100_000),
    "1000x10k": ("1,000 columns × 10k rows against 1,000 × 10k", 1000, 10_000),
}


def tables(columns, rows, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (rows, columns))
    b = rng.normal(0.0, 1.0, (rows, columns))
    b[:, ::10] += 0.05
    return a, b


def write_parquet(path, m, names, row_group=None):
    t = pa.table({n: m[:, j] for j, n in enumerate(names)})
    pq.write_table(t, path, compression="snappy", row_group_size=row_group)


def run_driftgauge(cmd):
    """Wall seconds, peak RSS in MiB, parsed JSON."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"driftgauge failed ({p.returncode}): {err.decode()}")
    return dt, json.loads(out)


def spawn_wait(cmd, stdout_path):
    """Runs `cmd` with stdout to `stdout_path` under GNU time; (wall seconds, peak RSS in
    MiB). Not wait4 on a child of this Python: a child's peak RSS counts the memory it had
    before exec, which for a fork (or a vfork sharing this Python's memory) is this Python's."""
    rss_file = stdout_path + ".rss"
    with open(stdout_path, "wb") as out:
        t = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd], stdout=out, check=True)
        dt = time.perf_counter() - t
    with open(rss_file) as f:
        kib = int(f.read().split()[-1])
    os.remove(rss_file)
    return dt, kib / 1024


def rss(cmd, data_dir):
    """Peak RSS (MiB) of one run of `cmd`."""
    return spawn_wait(cmd, os.path.join(data_dir, "rss.out"))[1]


def agree(col, r):
    d_ok = abs(col["statistic"] - r.statistic) <= 1e-12
    p, q = col["p_value"], float(r.pvalue)
    p_ok = abs(p - q) <= 1e-12 or abs(p - q) <= 1e-9 * abs(q)
    return d_ok and p_ok


def scipy_loop(a, b):
    return [stats.ks_2samp(a[:, j], b[:, j]) for j in range(a.shape[1])]


def evidently_time(python, pa_path, pb_path):
    code = r"""
import sys, time, numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
cols = [f"c{j}" for j in range(a.shape[1])]
ref, cur = pd.DataFrame(a, columns=cols), pd.DataFrame(b, columns=cols)
t = time.perf_counter()
snap = Report([DataDriftPreset()]).run(cur, ref)
dt = time.perf_counter() - t
d = snap.dict()
print(dt)
"""
    out = subprocess.run([python, "-c", code, pa_path, pb_path], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:] or ["failed"]
    return float(out.stdout.strip().splitlines()[-1]), None


def fmt(s):
    return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"


def row(name, binary, runs, data_dir, evidently):
    label, columns, rows = ROWS[name]
    a, b = tables(columns, rows, seed=columns + rows)
    names = [f"c{j}" for j in range(columns)]
    pa_npy, pb_npy = (os.path.join(data_dir, f"{name}-{w}.npy") for w in ("ref", "cur"))
    np.save(pa_npy, a)
    np.save(pb_npy, b)
    pa_pq, pb_pq = (os.path.join(data_dir, f"{name}-{w}.parquet") for w in ("ref", "cur"))
    write_parquet(pa_pq, a, names)
    write_parquet(pb_pq, b, names)
    pa_csv, pb_csv = (os.path.join(data_dir, f"{name}-{w}.csv") for w in ("ref", "cur"))
    for path, m in ((pa_csv, a), (pb_csv, b)):
        pacsv.write_csv(pa.table({n: m[:, j] for j, n in enumerate(names)}), path)
    cmd = lambda x, y: [binary, "eval", f"--reference={x}", f"--current={y}", "--output=json", "--correction=none"]
    contenders = {
        "driftgauge, .npy": cmd(pa_npy, pb_npy),
        "driftgauge, Parquet": cmd(pa_pq, pb_pq),
        "driftgauge, CSV": cmd(pa_csv, pb_csv),
    }
    results = {}
    for key, c in contenders.items():
        run_driftgauge(c)
        times = []
        for _ in range(runs):
            dt, out = run_driftgauge(c)
            times.append(dt)
        results[key] = (statistics.median(times), rss(c, data_dir), out)
    scipy_loop(a[:, :5], b[:, :5])
    times = []
    for _ in range(runs if columns * rows <= 10**7 else 1):
        t = time.perf_counter()
        theirs = scipy_loop(a, b)
        times.append(time.perf_counter() - t)
    t_scipy = statistics.median(times)
    ok = True
    for key, (_, _, out) in results.items():
        # Columns come in file order (a .npy's are named 0, 1, ...).
        cols = out["columns"]
        bad = [n for j, n in enumerate(names) if not agree(cols[j], theirs[j])]
        if bad:
            print(f"  {key}: {len(bad)} columns disagree with scipy, e.g. {bad[:3]}", file=sys.stderr)
            ok = False
    t_ev, ev_err = (None, None)
    if evidently:
        t_ev, ev_err = evidently_time(evidently, pa_npy, pb_npy)
    lines = [f"{label}:"]
    for key, (t, r, out) in results.items():
        lines.append(f"  {key:<22} {fmt(t):>9}  peak RSS {r:6.0f} MiB  ({out['drifted']} of {columns} drifted)")
    lines.append(f"  {'scipy ks_2samp loop':<22} {fmt(t_scipy):>9}  (in memory, {sum(r.pvalue <= 0.05 for r in theirs)} p <= 0.05)")
    if evidently:
        if t_ev is None:
            lines.append(f"  {'Evidently':<22} failed: {ev_err}")
        else:
            lines.append(f"  {'Evidently':<22} {fmt(t_ev):>9}  (DataDriftPreset, in memory)")
    lines.append(f"  agreement with scipy on every column: {'yes' if ok else 'NO'}")
    for p in (pa_npy, pb_npy, pa_pq, pb_pq, pa_csv, pb_csv):
        os.remove(p)
    return "\n".join(lines), ok


def gen_3m(paths, rows=3_000_000, columns=1000, chunk=100_000):
    """Writes the reference and current tables of the `3m` row; seconds taken."""
    names = [f"c{j}" for j in range(columns)]
    t0 = time.perf_counter()
    for w, path in enumerate(paths):
        schema = pa.schema([(n, pa.float64()) for n in names])
        rng = np.random.default_rng(100 + w)
        with pq.ParquetWriter(path + ".part", schema, compression="snappy") as writer:
            for start in range(0, rows, chunk):
                m = rng.normal(0.0, 1.0, (chunk, columns))
                if w == 1:
                    m[:, ::10] += 0.05
                m = np.round(m, 2)
                writer.write_table(pa.table({n: m[:, j] for j, n in enumerate(names)}, schema=schema))
        os.replace(path + ".part", path)
    return time.perf_counter() - t0


def row_3m(binary, data_dir, runs, keep, columns=1000):
    """1,000 columns × 3M rows against the same shape, Parquet, values rounded to 0.01.
    With `keep`, tables already in `data_dir` are reused and none are removed."""
    names = [f"c{j}" for j in range(columns)]
    paths = [os.path.join(data_dir, f"3m-{w}.parquet") for w in ("ref", "cur")]
    check_cols = list(range(0, columns, columns // 20))
    if keep and all(os.path.exists(p) for p in paths):
        gen_note = "generated earlier, reused"
    else:
        gen_note = f"generated in {gen_3m(paths, columns=columns):.0f} s"
    size = sum(os.path.getsize(p) for p in paths) / 2**30
    cmd = [binary, "eval", f"--reference={paths[0]}", f"--current={paths[1]}", "--output=json", "--correction=none"]
    timed = [spawn_wait(cmd, os.path.join(data_dir, "3m.json")) for _ in range(runs)]
    dt = statistics.median(t for t, _ in timed)
    peak = max(r for _, r in timed)
    with open(os.path.join(data_dir, "3m.json")) as f:
        out = json.load(f)
    by_name = {c["name"]: c for c in out["columns"]}
    ok = True
    t_scipy = []
    for j in check_cols:
        a, b = (pq.read_table(p, columns=[names[j]]).column(0).to_numpy() for p in paths)
        t1 = time.perf_counter()
        r = stats.ks_2samp(a, b)
        t_scipy.append(time.perf_counter() - t1)
        ok &= agree(by_name[names[j]], r)
    if not keep:
        for p in paths:
            os.remove(p)
    lines = [
        f"1,000 columns × 3M rows against 1,000 × 3M, Parquet ({size:.1f} GiB in all, {gen_note}):",
        f"  {'driftgauge, Parquet':<22} {fmt(dt):>9}  peak RSS {peak:6.0f} MiB  ({out['drifted']} of {columns} drifted; "
        f"median of {runs}: {', '.join(fmt(t) for t, _ in timed)})",
        f"  {'scipy ks_2samp loop':<22} ~{fmt(statistics.mean(t_scipy) * columns):>8}  (estimated: {statistics.mean(t_scipy):.2f} s a column × {columns}, in memory)",
        f"  agreement with scipy on {len(check_cols)} columns: {'yes' if ok else 'NO'}",
    ]
    return "\n".join(lines), ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", default="100x100k,1000x10k")
    ap.add_argument("--evidently", help="a python with evidently installed")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs-3m", type=int, default=1, help="timed runs of the 3m row")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the 3m row's tables")
    args = ap.parse_args()
    data_dir = args.data_dir or os.path.join(os.path.dirname(os.path.abspath(args.bin)), "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, pyarrow {pa.__version__}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    all_ok = True
    for name in args.rows.split(","):
        if name == "3m":
            text, ok = row_3m(args.bin, data_dir, args.runs_3m, args.keep)
        else:
            text, ok = row(name, args.bin, args.runs, data_dir, args.evidently)
        print(text, flush=True)
        all_ok &= ok
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
