#!/usr/bin/env bash
# Time a full reproduction of the book: every chapter executed at params/full.yaml from an
# EMPTY results store, then the website; prints the wall time. Chapter 3's ticket studies,
# most of the work, are first computed by the ticket sweeps of params/sweeps/ (the same store
# entries the chapter reads) on one Dask worker per core ($FULL_REPRODUCTION_WORKERS to change
# it); the chapters then execute in turn. Then times a second execution of every chapter from
# the now full store (what a rebuild after a prose change costs).
#
#   bash bench/full_reproduction.sh [--threads N]     (extra arguments go to tools/book.py)
#
# Nothing of yours is used or touched: the store (TOYTICKET_STORE), the executed notebooks and
# the site go to a new temporary folder (or $FULL_REPRODUCTION_OUT), which is kept and printed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../tools/setup.sh"   # .venv, one thread, cd to the root

out="${FULL_REPRODUCTION_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/toyticket-full.XXXXXX")}"
export TOYTICKET_STORE="$out/store"
if [ -e "$TOYTICKET_STORE" ]; then
    echo "error: $TOYTICKET_STORE exists; the reproduction must start from an empty store" >&2
    exit 1
fi
echo "full reproduction into $out (store: $TOYTICKET_STORE); $(nproc --all) cores, $(date -Is)"

SECONDS=0
workers="${FULL_REPRODUCTION_WORKERS:-$(env -u OMP_NUM_THREADS nproc)}"  # nproc alone obeys OMP_NUM_THREADS=1
for grid in params/sweeps/tickets*.yaml; do   # chapter 3 at params/full.yaml, in parallel
    python -m toyticket.sweep --grid "$grid" --workers "$workers"
done
python tools/book.py site --params params/full.yaml --no-progress \
    --executed "$out/notebooks" --out "$out/html" "$@"
full=$SECONDS

SECONDS=0
python tools/book.py execute --params params/full.yaml --no-progress \
    --out "$out/notebooks-again" "$@"
again=$SECONDS

entries=$(find "$TOYTICKET_STORE" -name '*.json' | wc -l)
echo "full reproduction (every chapter at params/full.yaml, empty store, ticket sweeps on" \
    "$workers workers, site): $full s wall"
echo "execution again from the full store ($entries entries): $again s wall"
