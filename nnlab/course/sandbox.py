"""Run an untrusted command in a sandbox: its own filesystem view, user, limits, environment, network, processes.

With bubblewrap (``bwrap``, ``apt-get install bubblewrap``; see ``tests/sandbox_deps.sh``) the command sees only
a read-only whitelist (the system's ``/usr``, ``/etc``, ..., the Python installation, the ``nnlab`` package folder
alone, the data and model-cache folders) plus its private working copy, read-write, at ``/sandbox``; so neither
``solutions/``, nor other submissions, nor the grader's files exist for it, and it can write nowhere else. It runs
in new PID, network (loopback only), IPC and UTS namespaces: when its first process ends or is killed every
process it started dies with it, ``setsid`` or not. When the grader is root the command runs as ``nobody`` with no
capabilities (``setpriv``). Always: a scrubbed environment and resource limits (``prlimit``: address space,
CPU seconds, processes, file size, open files).

Without bubblewrap it falls back, with a printed warning, to ``unshare`` (PID and network namespaces, when root)
and the same limits, user and environment; the filesystem is then NOT hidden (:data:`LAST_MODE` says which).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

NOBODY = 65534
INSIDE = "/sandbox"                      # where the private copy appears inside the bubblewrap sandbox
PACKAGE_ROOT = "/opt/nnlab"              # the nnlab package folder alone is mounted at /opt/nnlab/nnlab


@dataclass
class Limits:
    """Resource limits of one sandboxed run."""
    memory_bytes: int = 6 * 2**30        # address space
    cpu_seconds: int = 600
    processes: int = 512                 # per user (threads count); only enforced for a non-root user
    file_bytes: int = 256 * 2**20
    open_files: int = 256


@dataclass
class Result:
    returncode: int
    timed_out: bool
    output: str                          # the last few thousand characters of stdout + stderr
    mode: str                            # "bubblewrap", "unshare" or "rlimits only"


LAST_MODE: Optional[str] = None


def have_bubblewrap() -> bool:
    """True when ``bwrap`` is installed and can make namespaces here."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "true"],
                           capture_output=True)
    return probe.returncode == 0


def _python_dirs() -> List[str]:
    dirs = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), os.path.realpath(sys.exec_prefix)}
    return sorted(dirs)


def _limits_command(limits: Limits) -> List[str]:
    return ["prlimit", f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_seconds}",
            f"--nproc={limits.processes}", f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}",
            "--core=0", "--"]


def _others_can_run_python() -> bool:
    """True when an unprivileged user can reach and execute this Python (not so under a mode-700 /root)."""
    path = Path(os.path.realpath(sys.executable))
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _user_command(mode: str) -> List[str]:
    if os.geteuid() != 0:
        return []
    if mode != "bubblewrap" and not _others_can_run_python():
        print(f"WARNING: nnlab sandbox ({mode}): {sys.executable} is not reachable by an unprivileged user, "
              f"so the submission runs as root", file=sys.stderr)
        return []
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def run(argv: Sequence[str], workdir: Path, timeout: float, limits: Optional[Limits] = None,
        env: Optional[Dict[str, str]] = None, read_only: Sequence[str] = (), mode: Optional[str] = None) -> Result:
    """Run ``argv`` sandboxed with ``workdir`` as its private, writable copy (``/sandbox`` inside bubblewrap).

    ``argv`` may use ``{work}`` for the copy's path as the command sees it and ``{pkg}`` for the folder to put
    on ``PYTHONPATH`` to import nnlab. ``read_only``: extra folders it may read (data, model cache). ``env``: the
    only environment variables it gets (besides PATH, HOME, TMPDIR, LANG). ``mode`` forces "bubblewrap",
    "unshare" or "rlimits only" (default: the strongest available). Every process is gone when this returns.
    """
    global LAST_MODE
    limits = limits or Limits(cpu_seconds=int(timeout) + 5)
    workdir = Path(workdir).resolve()
    package = Path(__file__).resolve().parents[1]            # .../nnlab
    if mode is None:
        mode = "bubblewrap" if have_bubblewrap() else ("unshare" if os.geteuid() == 0 else "rlimits only")
        if mode != "bubblewrap":
            warnings.warn(f"nnlab sandbox: bubblewrap is not available (install it: tests/sandbox_deps.sh); "
                          f"falling back to {mode}: the submission can READ the file system "
                          f"(solutions/, other submissions)", RuntimeWarning, stacklevel=2)
            print(f"WARNING: nnlab sandbox without bubblewrap ({mode}): the file system is not hidden",
                  file=sys.stderr)
    LAST_MODE = mode
    if os.geteuid() == 0:
        os.chown(workdir, NOBODY, NOBODY)
        for p in workdir.rglob("*"):
            os.lchown(p, NOBODY, NOBODY)
    work = INSIDE if mode == "bubblewrap" else str(workdir)
    pkg = PACKAGE_ROOT if mode == "bubblewrap" else str(package.parent)
    python_bin = os.path.join(os.path.realpath(sys.prefix), "bin")
    environment = {"PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work,
                   "LANG": "C.UTF-8", "PYTHONPATH": pkg, "PYTHONNOUSERSITE": "1"}
    environment.update({k: v.format(work=work, pkg=pkg) for k, v in (env or {}).items()})
    command = [a.format(work=work, pkg=pkg) for a in argv]
    inner = _user_command(mode) + _limits_command(limits) + command
    if mode == "bubblewrap":
        wrap = ["bwrap", "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--clearenv"]
        for d in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc"):
            if os.path.islink(d):
                wrap += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                wrap += ["--ro-bind", d, d]
        extra = sorted({os.path.realpath(d) for d in _python_dirs() + [str(p) for p in map(Path, read_only)
                                                                       if p.is_dir()]})
        parents = sorted({str(a) for d in extra + [f"{PACKAGE_ROOT}/nnlab"] for a in Path(d).parents
                          if str(a) != "/"}, key=lambda a: a.count("/"))
        for a in parents:                                    # world-traversable, whatever the host's mode
            wrap += ["--perms", "0755", "--dir", a]
        for d in extra:
            wrap += ["--ro-bind", d, d]
        wrap += ["--ro-bind", str(package), f"{PACKAGE_ROOT}/nnlab", "--bind", str(workdir), INSIDE,
                 "--chdir", INSIDE]
        for k, v in environment.items():
            wrap += ["--setenv", k, v]
        full, popen_env = wrap + ["--"] + inner, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    elif mode == "unshare":
        full = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--"] + inner
        popen_env = environment
    else:
        full, popen_env = inner, environment
    log_path = workdir.parent / (workdir.name + ".log")      # outside the copy: the command cannot reopen it
    with open(log_path, "wb") as log:                       # its size is bounded by the file-size limit
        proc = subprocess.Popen(full, cwd=str(workdir), env=popen_env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill(proc)
        proc.wait()
    with open(log_path, "rb") as log:
        log.seek(max(0, log_path.stat().st_size - 4000))
        output = log.read().decode("utf-8", "replace")
    return Result(-9 if timed_out else proc.returncode, timed_out, output, mode)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox's first process (the PID namespace takes every other one with it) and its group."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
