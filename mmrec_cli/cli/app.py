"""The Typer app: registers the commands, nothing else. Heavy imports live inside the commands."""

from __future__ import annotations

import inspect

import typer

from mmrec_cli.cli import (
    caption,
    cluster,
    export,
    extract,
    finetune,
    images,
    info,
    merge,
    prepare,
    pretrain,
    recommend,
    show_config,
    subsample,
    sweep,
    transfer,
)
from mmrec_cli.cli import eval as eval_cmd

app = typer.Typer(
    name="mmrec",
    help="Multimodal sequential recommendation: prepare data, extract features, train, evaluate, recommend.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help as written: rich markup would drop "[...]" ("mmrec[tensorboard]", "[ids, ...]")
)

COMMANDS = {
    "prepare": prepare.prepare,
    "extract": extract.extract,
    "merge": merge.merge,
    "caption": caption.caption,
    "cluster": cluster.cluster,
    "pretrain": pretrain.pretrain,
    "finetune": finetune.finetune,
    "sweep": sweep.sweep,
    "transfer": transfer.transfer,
    "eval": eval_cmd.eval_,
    "recommend": recommend.recommend,
    "export": export.export,
    "info": info.info,
    "config": show_config.show_config,
    "subsample": subsample.subsample,
    "images": images.images,
}


def summary(command) -> str:
    """A command's line in `mmrec --help`: its docstring's first paragraph, whole (click cuts its own at one line)."""
    return " ".join(inspect.cleandoc(command.__doc__ or "").split("\n\n")[0].split())


for name, command in COMMANDS.items():
    app.command(name, short_help=summary(command))(command)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)  # `kill`, a job scheduler's stop: clean up as for Ctrl-C
    app()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
