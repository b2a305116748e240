# Shared setup, sourced by tools/test.sh and tools/build_book.sh (bash):
#   creates .venv with Python >= 3.11 if missing, installs requirements.txt into it
#   (again only when requirements.txt or pyproject.toml changed), and activates it.
# pip runs with -qq (errors only): this machine's extra file indexes make -q print a warning per
# package. Run it directly (`bash tools/setup.sh`) to only set up the environment.
# PYTHON=/path/to/python3.11 selects the interpreter used to create the venv.

set -euo pipefail
TOYTICKET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$TOYTICKET_ROOT"

if [ ! -x .venv/bin/python ]; then
    py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: need Python >= 3.11 to create .venv ('$py' is $("$py" --version 2>&1 || echo missing)); set PYTHON=..." >&2
        exit 1
    fi
    echo "creating .venv with $("$py" --version 2>&1)"
    "$py" -m venv .venv
    .venv/bin/python -m pip install -qq --progress-bar off --upgrade pip
fi
# shellcheck disable=SC1091
source .venv/bin/activate

stamp=.venv/.toyticket-requirements.sha256
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "installing requirements.txt into .venv (quiet; takes about a minute the first time)"
    python -m pip install -qq --progress-bar off -r requirements.txt
    echo "$want" > "$stamp"
fi

# One thread per process: on a loaded 2-core machine torch with 2 threads ran 25-180x slower.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# System tools that pip cannot install (Debian packages, installed only when missing):
# - npm fetches the website's offline JavaScript once (MathJax, the widget manager; see
#   tools/book.py); the machine image normally has it.
# - chromium runs the browser test (tests/test_book.py::test_site_in_browser), which is
#   skipped without it, except in CI (CI=true), where it must run.
# With CI=true or TOYTICKET_SYSTEM_PACKAGES=1, and as root, they are installed with apt-get.
toyticket_apt_install() {
    local log
    log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; \
        } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "error: apt-get install $* failed" >&2
        return 1
    fi
    rm -f "$log"
}
toyticket_missing=()
command -v npm >/dev/null 2>&1 || toyticket_missing+=(npm)
command -v chromium >/dev/null 2>&1 || toyticket_missing+=(chromium fonts-dejavu-core)
if [ "${#toyticket_missing[@]}" -gt 0 ] \
    && { [ "${CI:-}" = true ] || [ "${TOYTICKET_SYSTEM_PACKAGES:-}" = 1 ]; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${toyticket_missing[*]} with apt-get (quiet)"
        toyticket_apt_install "${toyticket_missing[@]}"
    else
        echo "warning: missing ${toyticket_missing[*]}; install them as root with apt-get" >&2
    fi
fi
unset toyticket_missing
