#!/usr/bin/env bash
# The labs in a real browser: JupyterLab + ipywidgets driven end to end in headless Chromium (Playwright).
#
#   bash tests/browser/run.sh              # install what is missing, then run tests/browser
#   bash tests/browser/run.sh --deps-only  # only install Chromium and Playwright
#   bash tests/browser/run.sh -k 00        # extra arguments go to pytest
#
# Chromium is Debian's `chromium` package (apt-get); Playwright comes from the project's `[browser]` extra.
# Never `playwright install`: it downloads its own browser. If Chromium cannot be installed this script FAILS
# with a message; the browser test is never skipped silently.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
CHROMIUM=${NNLAB_CHROMIUM:-/usr/bin/chromium}
TOTAL_TIMEOUT=${NNLAB_BROWSER_TOTAL_TIMEOUT:-1200}   # seconds for the whole pytest run, whatever happens

die() {
    echo "browser-test: FAILED: $*" >&2
    exit 1
}

# 1. Chromium from Debian.
if [ ! -x "$CHROMIUM" ]; then
    echo "browser-test: $CHROMIUM not found; installing Debian's chromium package with apt-get"
    command -v apt-get >/dev/null 2>&1 \
        || die "no apt-get on this machine: install Chromium yourself and set NNLAB_CHROMIUM=/path/to/chromium"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            die "installing chromium needs root: run 'sudo apt-get update && sudo apt-get install -y chromium'"
        fi
    fi
    $SUDO apt-get update || die "'apt-get update' failed (no network to the Debian mirror?); cannot install chromium"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium \
        || die "'apt-get install -y chromium' failed; cannot run the browser test without Chromium"
    [ -x "$CHROMIUM" ] || die "chromium was installed but $CHROMIUM does not exist; set NNLAB_CHROMIUM"
fi
"$CHROMIUM" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 \
    || die "$CHROMIUM is installed but does not start ('$CHROMIUM --version' fails)"
echo "browser-test: using $("$CHROMIUM" --version 2>/dev/null) at $CHROMIUM"

# 2. Playwright (Python) from the project's [browser] extra.
[ -x "$PY" ] || die "no $PY: create the environment first ('make test' does it)"
if ! "$PY" -c "import playwright" 2>/dev/null; then
    echo "browser-test: playwright missing; installing the project's [browser] extra"
    "$PY" -m pip install -e '.[browser]' || die "could not install the [browser] extra (playwright) with pip"
fi
"$PY" -c "import playwright.sync_api" || die "playwright is installed but cannot be imported"

if [ "${1:-}" = "--deps-only" ]; then
    exit 0
fi

# 3. The test itself: tests/browser is skipped by the plain `pytest` run and only collected here.
mkdir -p test-output/browser
rm -f test-output/browser/*.png test-output/browser/jupyter-server.log   # this run's outputs only
export NNLAB_BROWSER_TEST=1 NNLAB_CHROMIUM="$CHROMIUM"
exec timeout --kill-after=30 "$TOTAL_TIMEOUT" "$PY" -m pytest tests/browser -v -rA -p no:randomly "$@"
