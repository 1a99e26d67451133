"""Encode many units (texts, images) in batches: sorted by length, prepared one batch ahead on a thread while
the model runs, resumable through `Partial`, with a progress callback.

An encoder has `dim`, `prepare(units) -> (prepared, lengths or None)`, `load(prepared batch) -> model input`
and `encode(model input) -> (vectors (B, D), usable flags (B,) or None, [(row, reason)])`. The batches of a
run depend only on the units, their lengths and the batch size, so a resumed run computes exactly the batches
an uninterrupted run would, and the result is bit-identical.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mmrec_cli.errors import INTERRUPTED, MmrecError, out_of_range


@dataclass
class Encoded:
    vectors: np.ndarray  # (U, D) float32
    ok: np.ndarray  # (U,) bool
    errors: list = field(default_factory=list)  # [(unit, reason)]
    seconds: float = 0.0


@dataclass
class Budget:
    """At most `max_batches` newly computed batches in this run (0 = no limit); then stop, resumable."""

    max_batches: int = 0
    used: int = 0

    def take(self) -> None:
        if self.max_batches and self.used >= self.max_batches:
            raise MmrecError(f"stopped after {self.used} batches as asked (--max-batches); run again with --resume to continue", INTERRUPTED)
        self.used += 1


class NoPartial:
    """Stands in for `Partial` when a run need not be resumable."""

    def done(self, name: str) -> dict:
        return {}

    def add(self, name: str, batch: int, arrays: dict, errors: list) -> None:
        pass

    def flush(self) -> None:
        pass


POSITIVE = ("batch_size", "max_pixels")  # the counts that must be at least 1; every other may be 0 (= no limit)


def check_counts(opts, names: tuple[str, ...]) -> None:
    """The numeric options `names` of `opts` (extract's or caption's) are in range."""
    for name in names:
        value = getattr(opts, name)
        if value < 0 or (name in POSITIVE and value < 1):
            raise out_of_range(f"--{name.replace('_', '-')}", value, "1 or more" if name in POSITIVE else "0 (no limit) or more")


def batches_of(lengths: np.ndarray | None, count: int, batch_size: int) -> list[np.ndarray]:
    """Unit indices per batch: longest first (stable), so each batch pads little."""
    order = np.arange(count) if lengths is None else np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def run(name: str, units: list, encoder, batch_size: int, partial=None, advance: Callable[[int], None] = lambda n: None, budget: Budget | None = None) -> Encoded:
    if batch_size < 1:
        raise out_of_range("--batch-size", batch_size, "1 or more")
    partial = partial or NoPartial()
    budget = budget or Budget()
    start = time.perf_counter()
    out = Encoded(np.zeros((len(units), encoder.dim), dtype=np.float32), np.ones(len(units), dtype=bool))
    if not units:
        return out
    prepared, lengths = encoder.prepare(units)
    batches = batches_of(lengths, len(units), batch_size)
    done = partial.done(name)
    for b, (arrays, errors) in done.items():
        _place(out, batches[b], arrays["emb"], arrays.get("ok"), errors)
        advance(len(batches[b]))
    todo = [b for b in range(len(batches)) if b not in done]
    try:
        _compute(name, todo, batches, prepared, encoder, out, partial, advance, budget)
    finally:
        partial.flush()
    out.seconds = time.perf_counter() - start
    return out


def _compute(name, todo, batches, prepared, encoder, out, partial, advance, budget) -> None:
    """Encode the batches in `todo`, loading the next one on a thread while the model runs."""
    batch_input = lambda b: [prepared[i] for i in batches[b]]  # noqa: E731
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrec-load") as ahead:
        pending = ahead.submit(encoder.load, batch_input(todo[0])) if todo else None
        for k, b in enumerate(todo):
            budget.take()
            loaded = pending.result()
            pending = ahead.submit(encoder.load, batch_input(todo[k + 1])) if k + 1 < len(todo) else None
            emb, ok, errors = encoder.encode(loaded)
            arrays = {"emb": emb} if ok is None else {"emb": emb, "ok": ok.astype(np.uint8)}
            partial.add(name, b, arrays, errors)
            _place(out, batches[b], emb, ok, errors)
            advance(len(batches[b]))


def _place(out: Encoded, rows: np.ndarray, emb: np.ndarray, ok, errors: list) -> None:
    if emb.shape != (len(rows), out.vectors.shape[1]):
        raise MmrecError(f"a stored batch has shape {emb.shape}, expected {(len(rows), out.vectors.shape[1])}; run without --resume to start over", 5)
    out.vectors[rows] = emb
    if ok is not None:
        out.ok[rows] = np.asarray(ok).astype(bool)
    out.errors.extend((int(rows[int(i)]), str(reason)) for i, reason in errors)
