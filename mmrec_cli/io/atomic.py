"""Atomic output: write to a temporary file beside the target, fsync, rename.

A reader never sees a half-written file, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from mmrec_cli.errors import IO_FAILURE, MmrecError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` on success."""
    target = Path(path)
    try:  # a folder that cannot be made or written (a file in the way, permissions) is an IO failure, not a bug
        if target.parent and not target.parent.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    except OSError as err:
        raise _io_error(err, target) from err
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as err:
        _remove(tmp)
        raise _io_error(err, target) from err
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _fsync(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _io_error(err: OSError, target: Path) -> MmrecError:
    if err.errno == errno.ENOSPC:
        return MmrecError(f"cannot write {target}: no space left on device; free some space and run again", IO_FAILURE)
    return MmrecError(f"cannot write {target}: {err.strerror or err}; check the path and its permissions", IO_FAILURE)
