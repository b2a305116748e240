#!/usr/bin/env bash
# Set up .venv (tools/setup.sh) and run the whole test suite: core unit tests, book checks
# (tests/test_book.py, including a site build) and nbval over tests/reference/*.ipynb.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k drift`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
rc=0
python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
fi
exit "$rc"
