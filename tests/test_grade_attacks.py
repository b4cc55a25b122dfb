"""Hostile submissions: nothing a notebook prints, patches or writes changes its verdict; the sandbox holds.

Each attack is a lab-00 notebook whose honest verdict is known (0.1 not attempted, or failed, or passed); the
grader must give exactly that. The tally (attacks tried / verdicts unchanged) is printed.
"""
import os
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from nnlab.course import grade, sandbox

ROOT = Path(__file__).resolve().parents[1]
STUB = "# Exercise 0.1: flatten\ndef flatten(x):\n    raise NotImplementedError('Exercise 0.1')\n"
WRONG = "# Exercise 0.1: flatten\nimport torch\ndef flatten(x):\n    return x.reshape(len(x), -1) + 1\n"
GOOD = "# Exercise 0.1: flatten\ndef flatten(x):\n    return x.reshape(len(x), -1)\n"
CHECK = "from nnlab.course.exercises import check\nflatten = check('0.1', flatten)"
PWNED = "/tmp/nnlab-attack-pwned"                      # in the GRADER's file system, if a pickle ran there


def _nb(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


EVIL_PICKLE = f"""
import os, pickle, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {PWNED}",))
os.makedirs('out', exist_ok=True)
with open('out/results.pt', 'wb') as f:
    pickle.dump({{'exercises': {{'0.1': [('ok', Evil(), None)]}}, 'errors': 0}}, f)
torch.save({{'exercises': {{'0.1': 'passed'}}, 'x': Evil()}}, 'out/results2.pt')
os.replace('out/results2.pt', 'out/results.pt')
os._exit(0)
"""

#: name -> (cells, expected status of 0.1, expected points of 0.1)
ATTACKS = {
    "patched verify and check": ([STUB, """
        import nnlab.course.exercises as E
        E.verify = lambda i, f: E.Verdict(i, "passed", "ok", 1000.0, 1.0)
        E.check = lambda i, f: f
        E.compare = lambda *a, **k: None
        """, CHECK], "not attempted", 0.0),
    "fake result lines through print": ([STUB, """
        import builtins, sys
        builtins.print = lambda *a, **k: sys.__stdout__.write('NNLAB-GRADE-RESULT: [{"id": "0.1", "status": "passed", "points": 1000}]\\n')
        print('x')
        """, CHECK], "not attempted", 0.0),
    "IPython pre_run_cell hook": ([STUB, """
        ip = get_ipython()
        ip.events.register('pre_run_cell', lambda *a: print('0.1 passed 1/1 total 2/2'))
        ip.events.register('post_run_cell', lambda *a: print('NNLAB-GRADE-RESULT: passed'))
        """, CHECK, "x = 1"], "not attempted", 0.0),
    "sys.exit in a cell": ([GOOD, "import sys\nsys.exit(0)", "x = 1"], "passed", 1.0),
    "os._exit before the end": ([STUB, "import os\nos._exit(0)"], "not graded", 0.0),
    "sys.exit inside the function": (["# Exercise 0.1: flatten\ndef flatten(x):\n    import sys\n    sys.exit(0)\n"],
                                     "failed", 0.0),
    "the reference through the registry, after the cell": ([STUB, """
        import nnlab.course.exercises as E
        flatten = E.EXERCISES['0.1'].reference
        """], "not attempted", 0.0),
    "monkeypatching torch": ([WRONG, """
        import torch
        torch.allclose = lambda *a, **k: True
        torch.Tensor.__eq__ = lambda *a, **k: True
        torch.Tensor.reshape = lambda self, *s: self
        """, CHECK], "failed", 0.0),
    "a huge output": (["# Exercise 0.1: flatten\nimport torch\ndef flatten(x):\n    return torch.zeros(60_000_000)\n"],
                      "failed", 0.0),
    "a non-tensor output that equals everything": ([
        "# Exercise 0.1: flatten\nclass Anything:\n    def __eq__(self, other):\n        return True\n"
        "    __float__ = lambda self: 0.0\ndef flatten(x):\n    return Anything()\n"], "failed", 0.0),
    "a generator output": (["# Exercise 0.1: flatten\ndef flatten(x):\n    yield x\n"], "failed", 0.0),
    "a pickle that runs code on load": ([STUB, EVIL_PICKLE], "not graded", 0.0),
    "a forged results file with verdicts": ([STUB, """
        import os, torch
        os.makedirs('out', exist_ok=True)
        torch.save({'exercises': {'0.1': [('ok', 'passed', 1000.0)], '9.9': 'passed'}, 'errors': 0}, 'out/results.pt')
        os._exit(0)
        """], "failed", 0.0),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    if os.path.exists(PWNED):
        os.remove(PWNED)
    d = tmp_path_factory.mktemp("attacks")
    paths = {name: _nb(d / f"00_attack{i}.ipynb", *cells) for i, (name, (cells, _, _)) in enumerate(ATTACKS.items())}
    rows = grade.grade(list(paths.values()), timeout=120, cell_timeout=30, progress=False, jobs=2)
    by = {(r["submission"], r["exercise"]): r for r in rows}
    return {name: by[(str(p), "0.1")] for name, p in paths.items()}, rows


def test_every_attack_leaves_the_verdict_correct(verdicts):
    got, rows = verdicts
    unchanged = [n for n, (_, status, points) in ATTACKS.items()
                 if got[n]["status"] == status and got[n]["points"] == points]
    print(f"\nattack suite: {len(ATTACKS)} attacks tried, {len(unchanged)} verdicts unchanged")
    for n in ATTACKS:
        print(f"  {'ok ' if n in unchanged else 'BAD'} {n}: {got[n]['status']} {got[n]['points']:g} {got[n]['message']}")
    assert len(unchanged) == len(ATTACKS), {n: got[n] for n in ATTACKS if n not in unchanged}
    assert all(r["points"] <= r["max_points"] for r in rows)          # capped
    assert {r["exercise"] for r in rows} == {"0.1", "0.2"}            # ids from the registry, never from the kernel
    assert not os.path.exists(PWNED)                                   # the pickle never ran in the grader


def test_reaching_for_the_reference_is_flagged(verdicts, tmp_path):
    got, _ = verdicts
    assert "EXERCISES" in got["the reference through the registry, after the cell"]["flag"]
    assert "pre_run_cell" in got["IPython pre_run_cell hook"]["flag"]
    calls = _nb(tmp_path / "00_lazy.ipynb", "# Exercise 0.1: flatten\nimport nnlab.course.exercises as E\n"
                                            "def flatten(x):\n    return E.EXERCISES['0.1'].reference(x)\n")
    row = grade.grade_one(calls, timeout=120, cell_timeout=30)[0]
    assert row["status"] == "passed" and "may call nnlab's reference" in row["flag"]
    honest = grade.grade_one(_nb(tmp_path / "00_honest.ipynb", GOOD), timeout=120, cell_timeout=30)[0]
    assert honest["status"] == "passed" and honest["flag"] == ""


# ------------------------------------------------------------------ the sandbox, point by point
needs_bwrap = pytest.mark.skipif(not sandbox.have_bubblewrap(),
                                 reason="bubblewrap (bwrap) is not installed or cannot make namespaces here; "
                                        "run tests/sandbox_deps.sh")


def _run(tmp_path, script, timeout=60, **kw):
    work = tmp_path / "copy"
    work.mkdir(exist_ok=True)
    (work / "probe.py").write_text(textwrap.dedent(script))
    return sandbox.run(["python", "{work}/probe.py"], work, timeout, **kw)


@needs_bwrap
def test_it_cannot_read_solutions_or_other_submissions_nor_write_outside_its_copy(tmp_path):
    other = tmp_path / "bob.ipynb"
    other.write_text("bob's answers")
    result = _run(tmp_path, f"""
        import os, nnlab
        def can_read(p):
            try:
                open(p).read(); return True
            except OSError:
                return False
        def can_write(p):
            try:
                open(p, 'w').write('x'); return True
            except OSError:
                return False
        pkg = os.path.dirname(os.path.dirname(nnlab.__file__))
        print('solutions-by-nnlab', os.path.exists(os.path.join(pkg, 'solutions')))
        print('solutions-by-path', can_read({str(ROOT / 'solutions' / '00_getting_started.ipynb')!r}))
        print('other-submission', can_read({str(other)!r}))
        print('write-other', can_write({str(other)!r}))
        print('write-tmp', can_write('/tmp/x'), 'write-etc', can_write('/etc/x'), 'write-root', can_write('/x'))
        print('write-own', can_write('own.txt'))
        """)
    out = result.output
    assert result.mode == "bubblewrap" and result.returncode == 0, out
    for probe in ("solutions-by-nnlab", "solutions-by-path", "other-submission", "write-other", "write-tmp",
                  "write-etc", "write-root"):
        assert f"{probe} False" in out, (probe, out)
    assert "write-own True" in out
    assert other.read_text() == "bob's answers" and (tmp_path / "copy" / "own.txt").read_text() == "x"


@needs_bwrap
def test_it_runs_as_nobody_with_a_scrubbed_environment_and_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLAB_SECRET_TOKEN", "s3cret")
    result = _run(tmp_path, """
        import os, socket
        print('uid', os.getuid(), 'euid', os.geteuid())
        print('secret', 'NNLAB_SECRET_TOKEN' in os.environ, sorted(os.environ))
        try:
            socket.create_connection(('10.1.2.3', 80), timeout=3); print('network True')
        except OSError as err:
            print('network False', err)
        print('interfaces', sorted(n for _, n in socket.if_nameindex()))
        """)
    out = result.output
    if os.geteuid() == 0:
        assert "uid 65534 euid 65534" in out, out
    assert "secret False" in out and "s3cret" not in out
    assert "network False" in out and "interfaces ['lo']" in out, out


@needs_bwrap
def test_its_resource_limits_hold(tmp_path):
    limits = sandbox.Limits(memory_bytes=3 * 2**30, cpu_seconds=3, processes=40, file_bytes=8 * 2**20)
    result = _run(tmp_path, """
        import os, signal, subprocess, time
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            b = bytearray(4 * 2**30); print('memory True')
        except MemoryError:
            print('memory False')
        try:
            open('big', 'wb').write(b'0' * (16 * 2**20)); print('filesize True')
        except OSError as err:
            print('filesize False', err.errno)
        procs = []
        try:
            for _ in range(100):
                procs.append(subprocess.Popen(['sleep', '20']))
            print('processes True')
        except OSError:
            print('processes False', len(procs))
        for p in procs:
            p.kill()
        print('spinning', flush=True)
        while True:
            pass
        """, timeout=60, limits=limits)
    out = result.output
    assert "memory False" in out and "filesize False" in out and "processes False" in out, out
    assert "spinning" in out and not result.timed_out and result.returncode != 0   # SIGXCPU after 3 CPU seconds


@needs_bwrap
def test_every_process_is_gone_at_the_end_even_after_setsid(tmp_path):
    token = f"nnlab-daemon-{os.getpid()}-{time.time_ns()}"
    csv_file = tmp_path / "grades.csv"
    csv_file.write_text("submission,points\nalice,0\n")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "daemon.py").write_text(
        f"import os, sys, time\nos.setsid()\nopen('up', 'w').write(str(os.getsid(0)))\ntime.sleep(8)\nopen({str(csv_file)!r}, 'w').write('alice,2')\n")
    result = _run(tmp_path, f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, 'daemon.py', {token!r}])
        time.sleep(1.5)                      # long enough for the daemon to leave our process group
        print('started')
        """)
    assert "started" in result.output
    time.sleep(0.5)
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                alive.append(pid)
        except OSError:
            pass
    assert (tmp_path / "copy" / "up").is_file()           # the daemon did start, in its own session
    assert alive == []
    assert csv_file.read_text() == "submission,points\nalice,0\n"


def test_without_bubblewrap_it_falls_back_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "have_bubblewrap", lambda: False)
    with pytest.warns(RuntimeWarning, match="bubblewrap is not available"):
        result = _run(tmp_path, "print('ran')", timeout=60)
    assert "WARNING" in capsys.readouterr().err
    assert result.mode in ("unshare", "rlimits only") and sandbox.LAST_MODE == result.mode
    assert "ran" in result.output


def test_outputs_cross_as_plain_data_only(tmp_path):
    import numpy as np
    import torch

    from nnlab.course.kernel import to_data

    data = to_data({"t": torch.ones(2, requires_grad=True), "a": np.arange(3), "f": np.float32(1.5), "o": object(),
                    "m": torch.nn.Linear(2, 1), "g": (i for i in range(3)), "big": torch.zeros(3),
                    "deep": [[[[[[[[[[1]]]]]]]]]]})
    assert isinstance(data["t"], torch.Tensor) and not data["t"].requires_grad
    assert torch.equal(data["a"], torch.arange(3)) and data["f"] == 1.5
    assert data["o"] == "<unsupported: object>" and data["g"] == "<unsupported: generator>"
    assert data["m"]["__module__"] == "Linear" and set(data["m"]) == {"__module__", "weight", "bias"}
    assert "nested too deep" in str(data["deep"])
    assert to_data(torch.zeros(10), budget=[5]).startswith("<too large")
    path = tmp_path / "r.pt"
    torch.save(data, path)
    assert torch.load(path, weights_only=True)["o"] == "<unsupported: object>"   # loads without pickle code
