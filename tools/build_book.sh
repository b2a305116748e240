#!/usr/bin/env bash
# Set up .venv (tools/setup.sh), execute every chapter with papermill and build the website
# with jupyter-book (-W: warnings are errors). Extra arguments go to `tools/book.py site`,
# e.g. `bash tools/build_book.sh --params params/full.yaml` for the full run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

python tools/book.py site "$@"
