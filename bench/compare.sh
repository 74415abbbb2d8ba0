#!/usr/bin/env bash
# driftgauge against scipy, side by side, on the same .npy arrays in the same run: KS, and
# cvm, anderson, wasserstein and energy on 10^6 vs 10^6.
#
#   bench/compare.sh [--runs N] [--rows NAME,...]
#
# Builds the release binary, makes sure numpy 2.4.6 and scipy 1.17.1 are importable (else
# creates target/bench-venv with pip), then runs bench/compare.py, which generates the
# arrays with numpy, times scipy.stats.ks_2samp in-process and `driftgauge eval` as a whole
# process, checks that D, p, location and sign agree, and prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet

PY=${PYTHON:-python3}
want='import numpy, scipy; assert (numpy.__version__, scipy.__version__) == ("2.4.6", "1.17.1")'
if ! "$PY" -c "$want" 2>/dev/null; then
    if [ ! -x target/bench-venv/bin/python ]; then
        "$PY" -m venv target/bench-venv
    fi
    target/bench-venv/bin/pip install --quiet numpy==2.4.6 scipy==1.17.1
    PY=target/bench-venv/bin/python
fi
exec "$PY" bench/compare.py --bin target/release/driftgauge "$@"
