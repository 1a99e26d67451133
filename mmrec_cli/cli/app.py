"""The Typer app: registers the commands, nothing else. Heavy imports live inside the commands."""

from __future__ import annotations

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
)

app.command("prepare")(prepare.prepare)
app.command("extract")(extract.extract)
app.command("merge")(merge.merge)
app.command("caption")(caption.caption)
app.command("cluster")(cluster.cluster)
app.command("pretrain")(pretrain.pretrain)
app.command("finetune")(finetune.finetune)
app.command("sweep")(sweep.sweep)
app.command("transfer")(transfer.transfer)
app.command("eval")(eval_cmd.eval_)
app.command("recommend")(recommend.recommend)
app.command("export")(export.export)
app.command("info")(info.info)
app.command("config")(show_config.show_config)
app.command("subsample")(subsample.subsample)
app.command("images")(images.images)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)  # `kill`, a job scheduler's stop: clean up as for Ctrl-C
    app()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
