"""Commands run in processes of their own, N at a time, each with its share of the threads: `python -m mmrec_cli
ARGV` per job, its stderr appended to the job's log, a progress line as each starts and ends. The sweep runs its
training and test evaluations through `execute`; a process is killed with its parent (Linux), so that no orphan
keeps writing."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Job:
    """One command to run in a process of its own: `python -m mmrec_cli ARGV`, its stderr appended to `log`."""

    label: str
    argv: list[str]
    log: Path
    started: str = "started"  # the progress line's ending when the process starts
    done: Callable[[], str] = lambda: "done"  # ... and once it succeeded


def thread_share(jobs: int, environ: dict | None = None) -> int:
    """Threads for each of `jobs` runs at a time: the budget (OMP_NUM_THREADS when set, else the CPUs this
    process may use) divided among them, at least 1."""
    environ = os.environ if environ is None else environ
    try:
        budget = int(environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        budget = 0
    if budget < 1:
        budget = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, budget // jobs)


def child_env(threads: int) -> dict:
    """The environment of a run: its share of threads, and this very mmrec_cli importable."""
    import mmrec_cli

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    root = str(Path(mmrec_cli.__file__).resolve().parents[1])
    site = {str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("purelib", "platlib")}
    if root not in site:  # a source checkout: put it first (never site-packages itself, which would shadow the standard library)
        env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else root
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the run is killed when the sweep process dies (kill -9 included), so that no orphan keeps writing."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def execute(pending: list[Job], jobs: int, log: Callable[[str], None], threads: int | None = None, poll: float = 0.05) -> list[tuple[Job, int]]:
    """Run the pending jobs, `jobs` at a time, each with `threads` threads; returns the failed ones with their exit
    status. On an interruption (or any error) the running processes are stopped; their checkpoints stay."""
    env = child_env(threads or thread_share(jobs))
    queue, running, failed = list(pending), [], []
    total = len(pending)
    started = 0
    try:
        while queue or running:
            while queue and len(running) < jobs:
                job = queue.pop(0)
                started += 1
                label = f"{started}/{total} {job.label}"
                log(f"{label}: {job.started}")
                running.append((job, _start(job, env), time.perf_counter(), label))
            time.sleep(poll)
            for entry in [e for e in running if e[1].poll() is not None]:
                running.remove(entry)
                job, proc, t0, label = entry
                if proc.returncode == 0:
                    log(f"{label}: {job.done()} ({time.perf_counter() - t0:.1f}s)")
                else:
                    failed.append((job, proc.returncode))
                    log(f"{label}: failed (exit {proc.returncode}): {last_line(job.log)}")
    finally:
        for _, proc, _, _ in running:
            proc.terminate()
        for _, proc, _, _ in running:
            proc.wait()
    return failed


def _start(job: Job, env: dict) -> subprocess.Popen:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "mmrec_cli", *job.argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            env=env, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def last_line(path: Path) -> str:
    """The last non-blank line of a log (a failed command's one-line error)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log at {path}"
    return (lines[-1] if lines else "no message") + f" (log: {path})"
