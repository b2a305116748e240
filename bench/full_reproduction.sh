#!/usr/bin/env bash
# Time a full reproduction of the book: every chapter executed at params/full.yaml from an
# EMPTY results store, then the website; prints the wall time. The heavy studies, most of the
# work, are first computed by one sweep of the grids of params/sweeps/ (the same store entries
# the chapters read: chapter 3's ticket studies, chapter 8's regime map, chapter 7's contest,
# in that order, since the later ones read the IMP ladders of the first) on one Dask worker
# per core ($FULL_REPRODUCTION_WORKERS to change it); the chapters then execute in turn. Then
# times a second execution of every chapter from the now full store (what a rebuild after a
# prose change costs).
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
grids=()
for name in tickets tickets_adam tickets_late tickets_widths regime_map contest; do
    grids+=(--grid "params/sweeps/$name.yaml")
done
python -m toyticket.sweep "${grids[@]}" --workers "$workers"
swept=$SECONDS
python tools/book.py site --params params/full.yaml --no-progress \
    --executed "$out/notebooks" --out "$out/html" "$@"
full=$SECONDS

SECONDS=0
python tools/book.py execute --params params/full.yaml --no-progress \
    --out "$out/notebooks-again" "$@"
again=$SECONDS

entries=$(find "$TOYTICKET_STORE" -name '*.json' | wc -l)
echo "full reproduction (every chapter at params/full.yaml, empty store, sweep on" \
    "$workers workers, site): $full s wall (the sweep: $swept s)"
echo "execution again from the full store ($entries entries): $again s wall"
# the record the speed appendix shows (bench/results/full_reproduction.json; commit it)
python - "$swept" "$full" "$again" "$entries" "$workers" <<'PY'
import json, os, platform, sys, time
from pathlib import Path

import toyticket as tt

swept, full, again, entries, workers = map(int, sys.argv[1:])
record = {
    "date": time.strftime("%Y-%m-%d"),
    "cpu": tt.numerics.describe()["cpu"],
    "cores": os.cpu_count(),
    "workers": workers,
    "numerics": tt.numerics.mode(),
    "sweep_s": swept,
    "full_s": full,
    "again_s": again,
    "store_entries": entries,
    "python": platform.python_version(),
}
path = Path("bench/results/full_reproduction.json")
path.write_text(json.dumps(record, indent=2) + "\n")
print(f"wrote {path}")
PY
