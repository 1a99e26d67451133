"""mmrec recommend MODEL DATASET: the top-k next items for each history of a JSON-lines stream."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import DEVICE, DEVICE_HELP, handle_errors, progress, say
from mmrec_cli.evaluation import TOP_BATCH, TOP_CHUNK


@handle_errors
def recommend(
    model: Path = typer.Argument(..., help="Model artifact from `mmrec finetune` / `mmrec transfer`."),
    dataset: Path = typer.Argument(..., help="The dataset artifact it was trained on (its items are the catalogue)."),
    features: str | None = typer.Option(None, "--features", help="The features artifact it was trained with (multimodal models)."),
    input_: str = typer.Option("-", "--input", "-i", help='Histories as JSON lines, {"user_id": ..., "items": [ids, newest last]}; "-" = stdin.'),
    output: str | None = typer.Option(None, "-o", "--output", help="Write the recommendations here (JSON lines; default: stdout)."),
    top_k: int = typer.Option(10, "--top-k", "-k", help="Items per history."),
    exclude_history: bool = typer.Option(False, "--exclude-history", help="Never recommend an item of the history itself."),
    strict: bool = typer.Option(False, "--strict", help="Refuse unknown item ids (file:line) instead of skipping and counting them."),
    batch_size: int = typer.Option(TOP_BATCH, "--batch-size", help="Histories scored at once."),
    chunk: int = typer.Option(TOP_CHUNK, "--chunk", help="Items scored at once (bounds memory for large catalogues)."),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
) -> None:
    """Rank the catalogue for every history read from --input; write one JSON line per history, in order."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import check_min
    from mmrec_cli.evaluation import recommend as R
    from mmrec_cli.io.atomic import check_distinct, check_writable
    from mmrec_cli.io.jsonl import line_writer
    from mmrec_cli.training import distributed, loading

    check_min({"--top-k": top_k, "--batch-size": batch_size, "--chunk": chunk}, 1)
    check_writable(output)  # None and '-' (stdout) pass
    check_distinct({"-o": output}, {"MODEL": model, "DATASET": dataset, "--features": features, "--input": input_})
    ds = D.load(str(dataset))
    _, net, _ = loading.load_trained(str(model), ds, features)
    dev = distributed.resolve_device(device)
    net.to(dev)
    cfg = R.RecommendConfig(top_k=top_k, exclude_history=exclude_history, batch_size=batch_size, chunk=chunk, strict=strict)
    stats = R.Stats()
    rows = R.read_histories(input_, ds.item_ids, ds.user_ids, stats, strict)
    encoded = R.encoded_ids(ds.item_ids)
    with progress("recommend", None) as advance, line_writer(output) as write:
        for row, items, scores in R.recommend(net, rows, ds.num_items, cfg, on_batch=advance):
            write(R.json_line(row, items, scores, encoded))
    say(stats.line())
    say(f"device: {distributed.describe(dev)}")  # after: bad histories are found while reading, and stay one line
