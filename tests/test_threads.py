"""The root conftest.py: one PyTorch thread pool per core share under pytest-xdist (workers and their kernels)."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_threads_per_worker_shares_the_cores_and_keeps_a_user_setting():
    f = _conftest().threads_per_worker
    assert f({"PYTEST_XDIST_WORKER_COUNT": "2"}, 2) == 1
    assert f({"PYTEST_XDIST_WORKER_COUNT": "2"}, 8) == 4
    assert f({"PYTEST_XDIST_WORKER_COUNT": "4"}, 2) == 1          # never 0
    assert f({"PYTEST_XDIST_WORKER_COUNT": "2"}, None) == 1       # cpu_count() unknown
    assert f({}, 2) is None                                         # not under xdist: defaults left alone
    assert f({"PYTEST_XDIST_WORKER_COUNT": "2", "OMP_NUM_THREADS": "2"}, 2) is None   # the user's choice wins


def test_xdist_workers_and_the_processes_they_start_get_their_share(tmp_path):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    expected = max(1, (os.cpu_count() or 1) // 2)
    (tmp_path / "test_probe.py").write_text(
        "import os, subprocess, sys, torch\n"
        "def test_probe():\n"
        f"    assert os.environ['OMP_NUM_THREADS'] == os.environ['MKL_NUM_THREADS'] == '{expected}'\n"
        f"    assert torch.get_num_threads() == {expected}\n"
        "    child = subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"OMP_NUM_THREADS\"])'],\n"
        "                           capture_output=True, text=True, check=True)\n"   # as a notebook kernel would
        f"    assert child.stdout.strip() == '{expected}'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
           and not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"          # xdist alone: a lean run (nbval, hypothesis not loaded)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "xdist.plugin", "-n", "2", "-q", "-p",
                          "no:cacheprovider", "-o", "addopts=", "test_probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
