"""What each item needs encoded (units, deduplicated), and how encoded units become the artifact's tensors.

A plan maps every item to the unit of its one vector (its whole text) and to the units of its stack
(sentences, caption lines or images). Identical strings or files are encoded once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmrec_cli.features.images import REASONS, resolve
from mmrec_cli.features.items import Source


@dataclass
class Plan:
    units: list = field(default_factory=list)
    single: list = field(default_factory=list)  # per item: unit of its one vector, or None
    stacks: list = field(default_factory=list)  # per item: units of its stack rows
    given: list = field(default_factory=list)  # per item: the stack rows as written in the input
    cut: int = 0  # items whose stack was cut to the limit
    origin: list = field(default_factory=list)  # per unit: where it is first named ("file:line 'name'")
    _index: dict = field(default_factory=dict, repr=False)

    def unit(self, key, origin: str = "") -> int:
        if key not in self._index:
            self._index[key] = len(self.units)
            self.units.append(key)
            self.origin.append(origin)
        return self._index[key]


@dataclass
class Problems:
    """Unusable inputs by reason, each with its first example; `labels` words a reason for people (default: the
    image reasons of features/images.py)."""

    counts: Counter = field(default_factory=Counter)
    first: dict = field(default_factory=dict)
    labels: dict = field(default_factory=lambda: REASONS)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        self.first.setdefault(reason, example)

    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return "; ".join(f"{n} {self.labels.get(r, r)} (first: {self.first[r]})" for r, n in self.counts.most_common())


def text_plan(source: Source, per_sentence: bool, max_sentences: int) -> Plan:
    """Items: the whole text (+ sentences with per_sentence). Captions: one row per captioned image."""
    plan = Plan()
    whole = source.kind == "items"
    stacked = per_sentence or not whole
    for text, sentences in zip(source.texts, source.sentences):
        plan.single.append(plan.unit(text) if whole and text.strip() else None)
        rows = sentences if stacked else []
        if max_sentences and len(rows) > max_sentences:
            rows, plan.cut = rows[:max_sentences], plan.cut + 1
        plan.stacks.append([plan.unit(s) for s in rows])
        plan.given.append(list(rows))
    return plan


def image_plan(source: Source, root: Path, allow_outside: bool, max_images: int, problems: Problems) -> Plan:
    """Each item's images that resolve to files inside `root` (at most max_images), the rest counted."""
    plan = Plan()
    for images, line in zip(source.images, source.lines):
        if max_images and len(images) > max_images:
            images, plan.cut = images[:max_images], plan.cut + 1
        units, given = [], []
        for name in images:
            path, reason = resolve(root, name, allow_outside)
            where = f"{source.path}:{line} '{name}'"
            if reason:
                problems.add(reason, where)
                continue
            units.append(plan.unit(path, where))
            given.append(name)
        plan.single.append(None)
        plan.stacks.append(units)
        plan.given.append(given)
    return plan


def assemble(name: str, plan: Plan, vectors: np.ndarray, ok: np.ndarray, single_from_stack: bool, normalize: bool, with_stack: bool) -> dict:
    """Tensors NAME (N, D), NAME_mask (N,) and, with_stack, NAME_stack (N, S, D), NAME_stack_mask (N, S).

    Unusable units are dropped from the stacks (valid rows first). The one vector is the item's whole-text
    unit, or with single_from_stack the mean of its valid stack rows (re-normalised when normalize)."""
    n, dim = len(plan.stacks), vectors.shape[1]
    rows = [[u for u in units if ok[u]] for units in plan.stacks]
    width = max([1] + [len(r) for r in rows])
    vec, mask = np.zeros((n, dim), np.float32), np.zeros(n, np.uint8)
    stack, stack_mask = np.zeros((n, width, dim), np.float32), np.zeros((n, width), np.uint8)
    for i, r in enumerate(rows):
        stack[i, : len(r)], stack_mask[i, : len(r)] = vectors[r], 1
        if single_from_stack and r:
            vec[i], mask[i] = _mean(vectors[r], normalize), 1
        elif not single_from_stack and plan.single[i] is not None and ok[plan.single[i]]:
            vec[i], mask[i] = vectors[plan.single[i]], 1
    out = {name: vec, f"{name}_mask": mask}
    if with_stack:
        out.update({f"{name}_stack": stack, f"{name}_stack_mask": stack_mask})
    return out


def _mean(rows: np.ndarray, normalize: bool) -> np.ndarray:
    v = rows.mean(axis=0, dtype=np.float32)
    if normalize:
        v = v / max(float(np.linalg.norm(v)), 1e-12)
    return v
