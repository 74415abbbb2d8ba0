#!/usr/bin/env bash
# `driftgauge eval` on datasets against a scipy ks_2samp loop and Evidently, side by side,
# on the same generated tables in the same run.
#
#   bench/datasets.sh [--runs N] [--rows 100x100k,1000x10k,3m] [--keep] [--runs-3m N]
#
# Builds the release binary, makes sure numpy 2.4.6, scipy 1.17.1 and pyarrow are importable
# (else creates $target/bench-venv with pip), and, when Evidently installs from PyPI, uses it
# from $target/evidently-venv (its own venv; Evidently 0.7.23 fails to import with pandas 3,
# so pandas<3 is pinned there). Then runs
# bench/datasets.py, which generates the tables (nothing is committed; the `3m` row writes
# about 7 GiB of Parquet under $target/bench-data and removes it, unless --keep, which also
# reuses the files of an earlier --keep run), times each contender and checks that
# driftgauge agrees with scipy on every column. --runs-3m N times the 3m row N times (median).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
# GNU time measures each run's peak RSS.
if [ ! -x /usr/bin/time ]; then
    apt-get install -y -qq time >/dev/null
fi

PY=${PYTHON:-python3}
want='import numpy, scipy, pyarrow; assert (numpy.__version__, scipy.__version__) == ("2.4.6", "1.17.1")'
if ! "$PY" -c "$want" 2>/dev/null; then
    if [ ! -x "$target/bench-venv/bin/python" ]; then
        "$PY" -m venv "$target/bench-venv"
    fi
    "$target/bench-venv/bin/pip" install --quiet numpy==2.4.6 scipy==1.17.1 pyarrow
    PY=$target/bench-venv/bin/python
fi
evidently=()
if [ "${EVIDENTLY:-1}" = 1 ]; then
    if [ ! -x "$target/evidently-venv/bin/python" ]; then
        python3 -m venv "$target/evidently-venv"
    fi
    if "$target/evidently-venv/bin/python" -c 'import evidently' 2>/dev/null \
        || timeout 900 "$target/evidently-venv/bin/pip" install --quiet evidently "pandas<3"; then
        evidently=(--evidently "$target/evidently-venv/bin/python")
    else
        echo "Evidently did not install; its rows are left out" >&2
    fi
fi
exec "$PY" bench/datasets.py --bin "$target/release/driftgauge" "${evidently[@]}" "$@"
