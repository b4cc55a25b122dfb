"""The browser test runs only through ``tests/browser/run.sh`` (``make browser-test``, called by ``make test``).

run.sh installs Chromium and Playwright first, or fails with a message, then sets ``NNLAB_BROWSER_TEST=1``.
The plain ``pytest`` run of ``make test`` does not collect this folder, so it is never skipped silently: it is
run, separately, by run.sh.
"""
import os

if os.environ.get("NNLAB_BROWSER_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]
