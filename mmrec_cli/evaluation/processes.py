"""`eval --nproc N`: the users of a split ranked by N processes on this machine, with the records of one.

`spread` ranks the first span of users in this process while N - 1 spawned processes (`_worker`) rank the
others, each loading its own model and dataset through the caller's `load()`; the spans start on batch
boundaries (`ranking.spans`) and every process keeps this one's number of threads, so every batch is
computed as a single process computes it. A process reports each ranked batch (progress), then its
records or its error; one that dies without its records fails the evaluation, and nothing is written.
"""

from __future__ import annotations

import contextlib

import torch

from mmrec_cli.data.batches import eval_rows
from mmrec_cli.data.dataset import Dataset
from mmrec_cli.errors import INTERNAL, MmrecError
from mmrec_cli.evaluation.ranking import EvalConfig, rank_rows
from mmrec_cli.models import Scorer


def spread(model: Scorer, ds: Dataset, cfg: EvalConfig, rows: tuple, parts: list, rankings_k: int, on_batch, load) -> list[dict]:
    """Rank parts[0] here while spawned processes rank the other parts; all records in user order."""
    workers = _Workers(load, cfg, parts, rankings_k, torch.get_num_threads())
    try:
        own = rank_rows(model, ds, cfg, rows, parts[0], rankings_k, lambda n: workers.advance(n, on_batch))
        return own + workers.results(on_batch)
    finally:
        workers.close()


class _Workers:
    """The spawned processes ranking parts 1.. of the users, and what they have sent back so far.

    A process sends ("batch", part, users) per batch, then ("done", part, records) or ("error", part,
    message, exit code). One that fails, or ends without its records, fails the evaluation."""

    def __init__(self, load, cfg: EvalConfig, parts: list, rankings_k: int, threads: int):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # not fork: a forked child of a process whose OpenMP pool has run hangs
        self.total = len(parts)
        self.queue = ctx.Queue()
        self.procs = {p: ctx.Process(target=_worker, args=(p, load, cfg, parts[p], rankings_k, threads, self.queue), daemon=True) for p in range(1, len(parts))}
        self.done: dict[int, list] = {}
        try:
            with _sigint_ignored():  # inherited: Ctrl-C interrupts this process, which stops the others
                for proc in self.procs.values():
                    proc.start()
        except BaseException:
            self.close()
            raise

    def advance(self, users: int, on_batch) -> None:
        """This process's batch of `users` is ranked: report it and what the others have sent meanwhile."""
        if on_batch:
            on_batch(users)
        self._receive(on_batch, block=False)

    def results(self, on_batch) -> list[dict]:
        """Every other part's records, in part order, once all have come."""
        while len(self.done) < len(self.procs):
            self._receive(on_batch, block=True)
        return [rec for p in sorted(self.done) for rec in self.done[p]]

    def _receive(self, on_batch, block: bool) -> None:
        """Handle the next message (block) or every message waiting (not block)."""
        import queue

        try:
            if block:
                self._handle(self.queue.get(timeout=0.5), on_batch)
            while not block:
                self._handle(self.queue.get_nowait(), on_batch)
        except queue.Empty:
            if block:
                self._check_alive(on_batch)

    def _handle(self, message: tuple, on_batch) -> None:
        kind, part = message[:2]
        if kind == "batch" and on_batch:
            on_batch(message[2])
        elif kind == "done":
            self.done[part] = message[2]
        elif kind == "error":
            raise MmrecError(f"evaluation process {part + 1} of {self.total} failed: {message[2]}", message[3])

    def _check_alive(self, on_batch) -> None:
        """Fail when a process has ended without its records: a message it sent before it ended is read
        first (its queue is flushed when it exits)."""
        import queue

        ended = [p for p, proc in self.procs.items() if p not in self.done and proc.exitcode is not None]
        try:
            while True:
                self._handle(self.queue.get(timeout=0.1), on_batch)
        except queue.Empty:
            pass
        for p in (p for p in ended if p not in self.done):
            raise MmrecError(f"evaluation process {p + 1} of {self.total} {_ending(self.procs[p].exitcode)} before returning its users; nothing was written", INTERNAL)

    def close(self) -> None:
        """Stop the processes still running (after a failure or an interrupt) and wait for them all."""
        started = [proc for proc in self.procs.values() if proc.pid is not None]
        for proc in started:
            if proc.is_alive():
                proc.terminate()
        for proc in started:
            proc.join()
        self.queue.close()


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process (the main thread's only) while processes it spawns inherit that."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ending(code: int) -> str:
    """How a process ended, for people: a signal by name (SIGKILL is most often the out-of-memory killer)."""
    if code >= 0:
        return f"ended with exit code {code}"
    import signal

    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    return f"was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")


def _worker(part: int, load, cfg: EvalConfig, span: tuple[int, int], rankings_k: int, threads: int, out) -> None:
    """A spawned process: load the model and dataset, rank rows span of the split, send the records."""
    try:
        torch.set_num_threads(threads)
        model, ds = load()
        rows = eval_rows(ds, cfg.split)
        records = rank_rows(model, ds, cfg, rows, span, rankings_k, lambda n: out.put(("batch", part, n)))
        out.put(("done", part, records))
    except MmrecError as err:
        out.put(("error", part, str(err), err.code))
    except Exception as err:  # noqa: BLE001 - any failure is reported by the parent, in one line
        out.put(("error", part, f"{type(err).__name__}: {err}", INTERNAL))
