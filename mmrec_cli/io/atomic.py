"""Atomic output: write to a temporary file beside the target, fsync, rename.

A reader never sees a half-written file, and a failed write leaves nothing behind. `check_writable` is the
cheap preflight that commands run before any heavy work, so that a bad output path fails in seconds.

The temporary file is `.NAME.PID.XXXXXXXX.tmp`. A run killed without a chance to clean up (kill -9, power loss)
leaves its file behind; the next write of the same target removes every such file whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mmrec_cli.errors import IO_FAILURE, MmrecError, usage


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` on success."""
    target = Path(path)
    try:  # a folder that cannot be made or written (a file in the way, permissions) is an IO failure, not a bug
        if target.parent and not target.parent.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent or ".")
    except OSError as err:
        raise io_error(err, target) from err
    os.close(fd)
    try:
        try:
            yield Path(tmp)
        except Exception as err:  # a writer library's own error for a failed write (safetensors: "os error 28")
            os_err = as_os_error(err)
            if os_err is None:
                raise
            raise os_err from err
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished output gets the mode `open` would give
        os.replace(tmp, target)
    except OSError as err:
        _remove(tmp)
        raise io_error(err, target) from err
    except BaseException:
        _remove(tmp)
        raise


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def as_os_error(err: Exception) -> OSError | None:
    """The OSError a library reports in its own exception's text (Rust's "... (os error 28)"), else None."""
    if isinstance(err, OSError):
        return None
    m = _OS_ERROR.search(str(err))
    return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary files of `target` left by processes that no longer run; return them."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^.]+\.tmp$")
    removed = []
    for cand in (target.parent if str(target.parent) else Path(".")).glob(f".{glob.escape(target.name)}.*.tmp"):
        m = pattern.match(cand.name)
        if m and not _alive(int(m.group(1))):
            _remove(str(cand))
            removed.append(cand)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _fsync(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def check_writable(path: str | os.PathLike | None, option: str = "-o") -> None:
    """Fail now (exit 6) if `path` could not be written later: a file in the way of its folder, a folder at
    the path itself, or a folder without write permission. Creates nothing; None and '-' (stdout) pass."""
    if path is None or str(path) == "-":
        return
    target = Path(path)
    folder = _nearest_existing(target.parent)  # missing folders are made by the atomic write
    if target.is_dir():
        reason, fix = errno.EISDIR, f"give a file path to {option}"
    elif not folder.is_dir():
        reason, fix = errno.ENOTDIR, f"{folder} is a file; give another {option} path"
    elif not os.access(folder, os.W_OK | os.X_OK):
        reason, fix = errno.EACCES, f"make {folder} writable or give another {option} path"
    else:
        return
    raise MmrecError(f"cannot write {target}: {os.strerror(reason)}; {fix}", IO_FAILURE)


def check_artifact_path(path: str | os.PathLike | None, option: str = "-o") -> None:
    """check_writable for a safetensors output, which never goes to stdout: '-' would make a file named '-'."""
    if path is not None and str(path) == "-":
        raise usage(f"{option} -: an artifact is a file, not a stream; give a path, e.g. {option} out.safetensors")
    check_writable(path, option)


Paths = str | os.PathLike | list | tuple | None


def check_distinct(outputs: dict[str, Paths], inputs: dict[str, Paths]) -> None:
    """Fail now (exit 6) if an output is one of the inputs, or another output: the same file after links are
    resolved (os.path.samefile where both exist, else the resolved paths). Keys name each path as the user
    gave it: an option ('-o', '--items') or an argument ('DATASET'); a value may be a list of paths.
    None and '-' (stdin/stdout) are skipped. Writing would replace the input, or lose the other output."""
    seen: list[tuple[str, str]] = []
    for option, path in _each(outputs):
        for label, other in _each(inputs):
            if _same_file(path, other):
                raise MmrecError(f"{option} {path} is also the {label} {'file' if label.startswith('-') else 'input'}; write to another file", IO_FAILURE)
        for label, other in seen:
            if _same_file(path, other):
                raise MmrecError(f"{option} {path} is also the {label} file; give each output its own file", IO_FAILURE)
        seen.append((option, path))


def _each(paths: dict[str, Paths]) -> Iterator[tuple[str, str]]:
    for label, value in paths.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is not None and str(path) != "-":
                yield label, str(path)


def _same_file(a: str, b: str) -> bool:
    """One file under two names: a link, a hard link, 'x/../f' (resolved even where x does not exist)."""
    try:
        a, b = os.path.realpath(a), os.path.realpath(b)
        return a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))
    except (OSError, ValueError):  # an unreadable folder on the way, a NUL in a name: reported where it is opened
        return False


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def io_error(err: OSError, target: Path) -> MmrecError:
    """The one line for a failed write of `target`: what, why, and what to do."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if err.errno == errno.ENOSPC else "disk quota exceeded"
        return MmrecError(f"cannot write {target}: {what}; free some space and run again", IO_FAILURE)
    if err.errno == errno.EROFS:
        return MmrecError(f"cannot write {target}: read-only file system; give an output path on a writable disk", IO_FAILURE)
    return MmrecError(f"cannot write {target}: {err.strerror or err}; check the path and its permissions", IO_FAILURE)
