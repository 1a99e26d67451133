"""mmrec sweep MODEL DATASET: one `mmrec finetune` run per (setting, seed), the best setting on validation, one test."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli import models
from mmrec_cli.cli._common import CONFIG_HELP, DEVICE, DEVICE_HELP, handle_errors


def _models() -> list[str]:
    return models.names("finetune")


@handle_errors
def sweep(
    model: str = typer.Argument(..., help=models.help_text("finetune"), autocompletion=_models),
    dataset: Path = typer.Argument(..., help="Dataset artifact from `mmrec prepare`."),
    output: Path = typer.Option(..., "-o", "--output", help="The sweep's folder: runs/<setting>/seed<S>.safetensors, settings.json, results.csv, results.md, best.safetensors, test_seed<S>.json."),
    seeds: str = typer.Option(..., "--seeds", help="Seeds of every setting, e.g. 1,2,3; the validation metric is averaged over them."),
    grid: list[str] = typer.Option([], "--grid", help="key=v1,v2 (repeatable, keys as --set): every combination of the values is a setting."),
    random: int | None = typer.Option(None, "--random", help="Sample N settings from --space instead of a grid."),
    space: str | None = typer.Option(None, "--space", help="JSON or TOML file: per key, a list of choices or a log_uniform / uniform range (docs/sweep.md)."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the --random draws: the same seed and space give the same settings."),
    features: str | None = typer.Option(None, "--features", help="Features artifact (multimodal models)."),
    init: Path | None = typer.Option(None, "--init", help="Start every run from this pre-trained model artifact (`mmrec pretrain`)."),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help="A setting every run shares, e.g. --set train.epochs=50 (repeatable); swept keys go in --grid or --space."),
    jobs: int = typer.Option(1, "--jobs", help="Runs at a time; each gets the thread budget (OMP_NUM_THREADS, else the CPUs) divided by N."),
    baseline: list[str] = typer.Option([], "--baseline", help="`mmrec eval --split test -o R.json --rankings R.jsonl` result(s) to test the chosen setting against (repeatable; paired tests as `eval --compare`)."),
    metric: str | None = typer.Option(None, "--metric", help="Validation metric to choose by (default: the model's train.metric), e.g. ndcg@10."),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
) -> None:
    """Train MODEL on DATASET once per (setting, seed), choose the setting with the best mean validation metric, evaluate it on the test split; rerun the same command to finish an interrupted sweep."""
    from mmrec_cli.errors import INTERRUPTED, MmrecError
    from mmrec_cli.training.sweep import sweep as run_sweep

    try:
        run_sweep(
            model, str(dataset), output, seeds, jobs=jobs, log=lambda line: typer.echo(line, err=True),
            features=features, config=config, sets=set_, init=None if init is None else str(init), grid=grid, random=random,
            space=space, sample_seed=sample_seed, metric=metric, baselines=baseline, device=device,
        )
    except KeyboardInterrupt:  # the runs were stopped; their artifacts and checkpoints stay
        raise MmrecError("interrupted; finished runs and checkpoints are kept: run the same command again to continue the sweep", INTERRUPTED) from None
