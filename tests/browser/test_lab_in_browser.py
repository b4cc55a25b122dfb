"""The labs in a real browser: JupyterLab, run all cells, the widgets render, a slider redraws the figure.

nbval proves that the kernel side runs; this test proves that a student sees a working slider. It starts
JupyterLab from the project's environment on a free loopback port with a one-off token, opens a lab in headless
Chromium (Debian's package, driven by Playwright), runs all cells from the Run menu, then checks in the page:

- every code cell ran (an execution count) and no cell shows a traceback or an error output;
- the widgets rendered: ``.jupyter-widgets`` and the slider are there, no "Loading widget..." or
  "Error displaying widget" text;
- moving the slider (keyboard, ArrowRight on its handle) changes the figure drawn below it (the ``<img>`` data);
- the lab file on disk is unchanged (autosave is off: a test never writes outputs into ``labs/``).

A screenshot of the lab after the interaction is saved under ``test-output/browser/``. The server is stopped at
the end, also on failure. Each lab gets at most ``NNLAB_BROWSER_ATTEMPTS`` attempts (2) of at most
``NNLAB_BROWSER_TIMEOUT`` seconds (300) each; an error shown in a cell fails at once, without a retry.

Run through ``bash tests/browser/run.sh`` (``make browser-test``), which installs Chromium and Playwright first.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test-output" / "browser"
CHROMIUM = os.environ.get("NNLAB_CHROMIUM", "/usr/bin/chromium")
ATTEMPTS = int(os.environ.get("NNLAB_BROWSER_ATTEMPTS", "2"))
ATTEMPT_TIMEOUT = float(os.environ.get("NNLAB_BROWSER_TIMEOUT", "300"))  # seconds, one attempt at one lab
SERVER_START_TIMEOUT = 120.0
# --headless is added by Playwright; without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# (lab, description of the slider to move); a lab is tested when its file exists.
LABS = [
    ("labs/00_getting_started.ipynb", "image"),  # W.image_picker: the explorer's `index`
    ("labs/07_activation_maximisation.ipynb", "tv_weight"),
]
if os.environ.get("NNLAB_BROWSER_LABS"):  # e.g. "labs/03_feature_maps.ipynb=layer,labs/00_getting_started.ipynb=image"
    LABS = [tuple(item.split("=", 1)) for item in os.environ["NNLAB_BROWSER_LABS"].split(",")]
CASES = [pytest.param(lab, slider, id=Path(lab).stem) for lab, slider in LABS if (REPO / lab).exists()]

# JupyterLab user settings for the test: no autosave (never write outputs into labs/), every cell in the DOM
# (no virtual scrolling), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

pytestmark = [pytest.mark.browser, pytest.mark.timeout(int(ATTEMPTS * ATTEMPT_TIMEOUT + 2 * SERVER_START_TIMEOUT))]


class LabError(AssertionError):
    """What the page shows is wrong (a traceback, a widget error): retrying would not help."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``jupyter lab`` from this Python's environment, in its own process group, with throw-away settings."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="nnlab-browser-"))
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = OUT / "jupyter-server.log"
        self.proc = None

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start(self) -> None:
        for plugin, settings in LAB_SETTINGS.items():
            path = self.tmp / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel uses the inline backend, as for a student
        env.pop("JUPYTER_TOKEN", None)
        env.update(JUPYTER_CONFIG_DIR=str(self.tmp / "config"), JUPYTER_DATA_DIR=str(self.tmp / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"), IPYTHONDIR=str(self.tmp / "ipython"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.tmp / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"))
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={REPO}",
                   "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None",
                   "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:
            command.append("--ServerApp.allow_root=True")
        OUT.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "a")
        self.log.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(command[:3])} on port {self.port}\n")
        self.log.flush()
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                self.api("/api/status", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(1)
        raise TimeoutError(f"jupyter lab did not answer /api/status in {SERVER_START_TIMEOUT:.0f} s; "
                           f"see {self.log_path}")

    def shutdown_kernels(self) -> None:
        try:
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass

    def kernel_pids(self) -> list[int]:
        """Kernels of this server: their command line names a connection file in our runtime folder."""
        marker = str(self.tmp / "runtime").encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        """Shut kernels and server down politely, then by signal; the kernels too (own sessions)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.shutdown_kernels()
                self.api("/api/shutdown", method="POST")
                self.proc.wait(timeout=20)
            except Exception:
                pass
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                if self.proc.poll() is not None:
                    break
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=wait)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        for pid in self.kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    assert Path(CHROMIUM).exists(), (f"Chromium not found at {CHROMIUM}: run `bash tests/browser/run.sh` "
                                     "(it installs Debian's chromium package) or set NNLAB_CHROMIUM")
    for attempt in range(1, ATTEMPTS + 1):
        lab = LabServer()
        try:
            lab.start()
            break
        except Exception:
            lab.stop()
            if attempt == ATTEMPTS:
                raise
    try:
        yield lab
    finally:
        lab.stop()
        assert not lab.kernel_pids(), "a kernel outlived the server"


# ----------------------------------------------------------------------------------------------------- page

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"

JS_PROMPTS = """() => Array.from(document.querySelectorAll('%s .jp-CodeCell .jp-InputPrompt'))
                    .map(p => p.innerText.trim())""" % NOTEBOOK

JS_STDERR = """() => Array.from(document.querySelectorAll(
        '%s .jp-OutputArea-output[data-mime-type*="stderr"], %s .jp-OutputArea-output[data-mime-type*="error"], ' +
        '%s .jp-RenderedText[data-mime-type*="stderr"], %s .jp-RenderedText[data-mime-type*="error"]'))
    .map(o => o.innerText)""" % ((NOTEBOOK,) * 4)

JS_WIDGETS = """() => {
    const nb = document.querySelector('%s');
    const text = nb.innerText;
    return {widgets: nb.querySelectorAll('.jupyter-widgets').length,
            sliders: Array.from(nb.querySelectorAll('.widget-slider .widget-label')).map(l => l.innerText.trim()),
            loading: text.includes('Loading widget'), error: text.includes('Error displaying widget')};
}""" % NOTEBOOK

# The figures of a cell: the data of its <img> outputs (the explorer's Output widget draws into the cell).
JS_FIGURES = "cell => Array.from(cell.querySelectorAll('.jp-OutputArea-output img')).map(img => img.src)"

ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b", re.MULTILINE)


def cell_errors(page) -> list[str]:
    """Tracebacks and exceptions shown in the notebook (warnings on stderr are allowed)."""
    return sorted({text for text in page.evaluate(JS_STDERR) if ERROR_TEXT.search(text)})


def kernel_state(server: LabServer, notebook: str):
    for session in server.api("/api/sessions"):
        if session.get("path") == notebook and session.get("kernel"):
            return session["kernel"]["execution_state"]
    return None


def run_lab(page, server: LabServer, notebook: str, slider_name: str, deadline: float, log: list) -> None:
    t0 = time.monotonic()

    def left_ms() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"attempt ran out of its {ATTEMPT_TIMEOUT:.0f} s")
        return left * 1000

    def wait_until(predicate, what: str, poll: float = 0.5):
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(poll)

    def note(what: str) -> None:
        log.append(f"{time.monotonic() - t0:6.1f} s  {what}")

    page.set_default_timeout(60_000)
    page.goto(f"{server.url}/lab/tree/{notebook}?token={server.token}", timeout=left_ms())
    page.wait_for_selector(f"{NOTEBOOK} .jp-CodeCell", timeout=left_ms())
    note("notebook open")
    wait_until(lambda: kernel_state(server, notebook) == "idle", "the kernel to start")
    page.wait_for_function("() => document.querySelector('#jp-main-statusbar').innerText.includes('Idle')",
                           timeout=left_ms())
    note("kernel idle")

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click(timeout=left_ms())
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click(timeout=left_ms())
    n_cells = len(page.evaluate(JS_PROMPTS))

    def all_ran() -> bool:
        if cell_errors(page):
            raise LabError(f"{notebook}: a cell shows an error:\n" + "\n---\n".join(cell_errors(page)))
        prompts = page.evaluate(JS_PROMPTS)
        return all(re.fullmatch(r"\[\d+\]:", p) for p in prompts) and kernel_state(server, notebook) == "idle"

    wait_until(all_ran, "every cell to run (an execution count in each prompt)", poll=1)
    note(f"all {n_cells} code cells ran")

    def widgets_settled() -> bool:
        widgets = page.evaluate(JS_WIDGETS)
        return widgets["error"] or (widgets["widgets"] > 0 and not widgets["loading"])

    wait_until(widgets_settled, "the widgets to render ('Loading widget...' still shown)")
    widgets = page.evaluate(JS_WIDGETS)
    if widgets["error"]:
        raise LabError(f"{notebook}: the page shows 'Error displaying widget'")
    if slider_name not in widgets["sliders"]:
        raise LabError(f"no slider '{slider_name}' in {notebook}, only {widgets['sliders']}")
    note(f"{widgets['widgets']} widget views rendered, sliders {widgets['sliders']}")

    slider = page.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(slider_name)}\s*$"))).first
    cell = slider.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
    cell_handle = cell.element_handle(timeout=left_ms())
    page.wait_for_function("cell => cell.querySelectorAll('.jp-OutputArea-output img').length > 0",
                           arg=cell_handle, timeout=left_ms())
    before = page.evaluate(JS_FIGURES, cell_handle)
    readout = slider.locator(".widget-readout")
    value_before = readout.inner_text().strip()

    slider.scroll_into_view_if_needed(timeout=left_ms())
    slider.locator(".noUi-handle").first.focus(timeout=left_ms())
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([cell, before]) => { const now = Array.from(cell.querySelectorAll('.jp-OutputArea-output img'))"
        ".map(img => img.src); return now.length > 0 && JSON.stringify(now) !== JSON.stringify(before); }",
        arg=[cell_handle, before], timeout=left_ms())
    value_after = readout.inner_text().strip()
    assert value_after != value_before, f"the slider '{slider_name}' did not move: {value_before}"
    wait_until(lambda: kernel_state(server, notebook) == "idle", "the kernel to finish the redraw")
    if cell_errors(page):
        raise LabError(f"{notebook}: an error after moving '{slider_name}':\n" + "\n---\n".join(cell_errors(page)))
    note(f"'{slider_name}' {value_before} -> {value_after}: the figure changed")

    page.wait_for_timeout(500)  # let the new image paint before the screenshot
    cell.scroll_into_view_if_needed()
    stem = Path(notebook).stem
    page.screenshot(path=str(OUT / f"{stem}.png"))
    cell.screenshot(path=str(OUT / f"{stem}-widget.png"))
    note(f"screenshots {OUT.relative_to(REPO)}/{stem}.png and {stem}-widget.png")


def test_some_lab_is_tested():
    assert CASES, f"none of {[lab for lab, _ in LABS]} exists"


@pytest.mark.parametrize("notebook, slider_name", CASES)
def test_lab_in_browser(server, notebook, slider_name):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    digest = hashlib.sha256((REPO / notebook).read_bytes()).hexdigest()
    stem = Path(notebook).stem
    failures = []
    for attempt in range(1, ATTEMPTS + 1):
        log = []
        deadline = time.monotonic() + ATTEMPT_TIMEOUT
        profile = tempfile.mkdtemp(prefix="nnlab-chromium-")
        try:
            with sync_playwright() as playwright:
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1400, "height": 1000}, timeout=120_000)
                try:
                    page = context.new_page()
                    try:
                        run_lab(page, server, notebook, slider_name, deadline, log)
                    except BaseException:
                        try:
                            page.screenshot(path=str(OUT / f"{stem}-failed-{attempt}.png"), timeout=10_000)
                        except PlaywrightError:
                            pass
                        raise
                finally:
                    context.close()
            print(f"{notebook}, attempt {attempt}:\n  " + "\n  ".join(log))
            break
        except LabError:
            print("\n".join(log))
            raise
        except (PlaywrightError, TimeoutError, AssertionError, OSError) as error:
            failures.append(f"attempt {attempt}: {type(error).__name__}: {error}\n  " + "\n  ".join(log))
            if attempt == ATTEMPTS:
                pytest.fail(f"{notebook} failed {ATTEMPTS} times in the browser:\n" + "\n".join(failures))
        finally:
            server.shutdown_kernels()
            shutil.rmtree(profile, ignore_errors=True)
    assert hashlib.sha256((REPO / notebook).read_bytes()).hexdigest() == digest, f"{notebook} was modified"
