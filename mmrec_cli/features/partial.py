"""OUTPUT.partial/: the finished batches of a run, so that an interrupted run continues where it stopped.

The folder holds settings.json (everything the results depend on) and shard files NAME-FIRST-LAST.safetensors,
each holding some finished batches ("B.emb", "B.ok" and the batch's unusable rows in the metadata). Shards are
written atomically, a few seconds apart, and always when the run stops, so a resumed run recomputes at most
the batches of the last few seconds before a hard kill. The folder is removed once the output is written.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmrec_cli.errors import mismatch
from mmrec_cli.io.atomic import atomic_path, io_error, write_text


class Partial:
    def __init__(self, output: str | Path, settings: dict, resume: bool, note: Callable[[str], None], flush_seconds: float = 5.0):
        self.dir = Path(f"{output}.partial")
        self.flush_seconds = flush_seconds
        self._buffer: dict[str, dict[int, tuple[dict, list]]] = {}
        self._last = time.monotonic()
        settings = json.loads(json.dumps(settings, sort_keys=True))
        try:  # a file in the way or a folder without permission: an IO failure (exit 6), not a bug
            self._open(settings, resume, note)
        except OSError as err:
            raise io_error(err, self.dir) from err

    def _open(self, settings: dict, resume: bool, note: Callable[[str], None]) -> None:
        if self.dir.exists():
            self._reuse_or_clear(settings, resume, note)
        elif resume:
            note(f"nothing to resume at {self.dir}; starting from the beginning")
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(self.dir / "settings.json", json.dumps(settings, indent=1, sort_keys=True))

    def _reuse_or_clear(self, settings: dict, resume: bool, note: Callable[[str], None]) -> None:
        if not resume:
            note(f"{self.dir}: left by an interrupted run; starting over (pass --resume to continue it)")
            shutil.rmtree(self.dir)
            return
        try:
            saved = json.loads((self.dir / "settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != settings:
            differ = sorted(k for k in set(settings) | set(saved or {}) if (saved or {}).get(k) != settings.get(k))
            raise mismatch(
                f"{self.dir}: the interrupted run used other settings ({', '.join(differ) or 'unreadable settings'}); "
                "resume with the same options and inputs, or run without --resume to start over"
            )
        note(f"resuming from {self.dir}")

    def done(self, name: str) -> dict[int, tuple[dict, list]]:
        """Finished batches of `name`: batch index -> (arrays, [(row, reason)])."""
        from safetensors import safe_open

        out: dict[int, tuple[dict, list]] = {}
        for path in sorted(self.dir.glob(f"{name}-*.safetensors")):
            with safe_open(str(path), framework="numpy") as f:
                errors = json.loads((f.metadata() or {}).get("errors", "{}"))
                for key in f.keys():
                    b, _, field = key.partition(".")
                    out.setdefault(int(b), ({}, [tuple(e) for e in errors.get(b, [])]))[0][field] = f.get_tensor(key)
        return out

    def add(self, name: str, batch: int, arrays: dict, errors: list) -> None:
        self._buffer.setdefault(name, {})[batch] = (arrays, errors)
        if time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        from safetensors.numpy import save_file

        for name, batches in self._buffer.items():
            if not batches:
                continue
            tensors = {f"{b}.{k}": np.ascontiguousarray(v) for b, (arrays, _) in batches.items() for k, v in arrays.items()}
            errors = {str(b): [list(e) for e in errs] for b, (_, errs) in batches.items() if errs}
            with atomic_path(self.dir / f"{name}-{min(batches):07d}-{max(batches):07d}.safetensors") as tmp:
                save_file(tensors, str(tmp), metadata={"errors": json.dumps(errors)})
        self._buffer = {}
        self._last = time.monotonic()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
