"""What every command shares: error reporting, stderr console, progress, the invocation record."""

from __future__ import annotations

import contextvars
import functools
import os
import re
from collections.abc import Callable
from contextlib import contextmanager

import typer

from mmrec_cli.errors import INTERNAL, INTERRUPTED, IO_FAILURE, USAGE, MmrecError

CONFIG_HELP = "JSON, TOML or YAML file of settings (layered: defaults < --config < --set < flags); RecBole's key names are accepted."
SET_HELP = "Override one setting, e.g. --set train.lr=3e-4 (repeatable)."
DEVICE = "auto"  # every command's --device default: a GPU where one is visible, else the CPU
TENSORBOARD_HELP = "Also write the training log as TensorBoard scalars into this folder (needs `pip install 'mmrec[tensorboard]'`)."
LOG_SUFFIX = ".log.jsonl"  # the training log beside each artifact: OUTPUT.log.jsonl, one JSON line per epoch
DEVICE_HELP = "auto (a CUDA GPU when one is visible, else the CPU) | cpu | cuda | cuda:N | mps. Under torchrun, cuda means each process's local GPU."


# Options that change how a command runs, never what it produces: kept out of the metadata so that a
# resumed run writes the same bytes as an uninterrupted one.
_NOT_RECORDED = {"resume", "checkpoint", "tensorboard"}
_INVOKED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("invoked", default=None)


def handle_errors(fn: Callable) -> Callable:
    """Turn MmrecError into one line on stderr and its exit code; never show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        params = {k: v for k, v in kwargs.items() if k not in _NOT_RECORDED}
        _INVOKED.set({"command": "mmrec " + fn.__name__.rstrip("_"), "params": _jsonable(params)})
        try:
            return fn(*args, **kwargs)
        except MmrecError as err:
            typer.echo(f"error: {_one_line(err)}", err=True)
            raise typer.Exit(err.code) from None
        except (typer.Exit, typer.Abort):
            raise
        except typer.BadParameter as err:  # a usage error found inside the command body
            typer.echo(f"error: {err.format_message()}", err=True)
            raise typer.Exit(USAGE) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; outputs were not written (rerun with --resume where supported)", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except MemoryError:
            typer.echo("error: out of memory; lower --batch-size (or the eval chunk size)", err=True)
            raise typer.Exit(IO_FAILURE) from None
        except Exception as err:  # an mmrec bug: say so in one line unless debugging
            if os.environ.get("MMREC_DEBUG"):
                raise
            typer.echo(f"internal error: {type(err).__name__}: {_one_line(err)} (set MMREC_DEBUG=1 for a traceback and report it)", err=True)
            raise typer.Exit(INTERNAL) from None

    return wrapper


def _one_line(err: BaseException) -> str:
    """The message with its line breaks and tabs folded (spaces kept, as in paths): library errors, such as
    torch's state-dict report, span lines, and the rule is one line on stderr."""
    return re.sub(r"\s*[\r\n\t\v\f]+\s*", " ", str(err)).strip()


def training_log(output) -> str:
    """The training log written beside the artifact OUTPUT: OUTPUT.log.jsonl."""
    return f"{output}{LOG_SUFFIX}"


def check_tensorboard(folder) -> None:
    """Fail now, before any data is read, if --tensorboard cannot be written: the package is missing (exit 2)
    or the path is a file (exit 6)."""
    if folder is None:
        return
    from pathlib import Path

    from mmrec_cli.training.loop import summary_writer_class

    summary_writer_class()
    if Path(folder).exists() and not Path(folder).is_dir():
        raise MmrecError(f"cannot write {folder}: Not a directory; give a folder to --tensorboard", IO_FAILURE)


def console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)  # text as given


def say(message: str) -> None:
    """One message on stderr, printed as is: file names and notes may hold "[...]" or ":name:" that rich would read as
    markup or an emoji."""
    console().print(message)


def invocation() -> dict:
    """The command as given (name and parameters), stored in every artifact's metadata."""
    return _INVOKED.get() or {"command": "mmrec", "params": {}}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


PROGRESS_SECONDS = 30.0  # a progress line this often when stderr is not a terminal (MMREC_PROGRESS_SECONDS)


def _progress_lines(description: str, total: int | None, unit: str, every: float) -> Callable[[int], None]:
    """advance(n) that prints "DESCRIPTION: DONE/TOTAL (P %), RATE UNIT/s, S s" once `every` seconds have passed."""
    import time

    start = last = time.monotonic()
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last < every:
            return
        last = now
        share = f"{done:,}/{total:,} ({100 * done / total:.0f} %)" if total else f"{done:,}"
        rate = f", {done / (now - start):,.1f} {unit}/s" if unit else ""
        say(f"{description}: {share}{rate}, {now - start:.0f} s")

    return advance


@contextmanager
def progress(description: str, total: int | None, unit: str | None = None):
    """A rich progress bar on stderr, with a rate column when a `unit` is given; yields advance(n). When
    stderr is not a terminal (a Makefile's log, a batch job), a plain line every PROGRESS_SECONDS instead."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f} {unit}/s" if speed else f"? {unit}/s")

    con = console()
    if not con.is_terminal:
        yield _progress_lines(description, total, unit or "", float(os.environ.get("MMREC_PROGRESS_SECONDS", PROGRESS_SECONDS)))
        return
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    cols += (Rate(), TimeElapsedColumn(), TimeRemainingColumn()) if unit else (TimeElapsedColumn(),)
    with Progress(*cols, console=con, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
