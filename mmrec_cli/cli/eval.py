"""mmrec eval MODEL DATASET: full-ranking metrics on the validation or (explicitly) the test split."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from mmrec_cli.cli._common import DEVICE, DEVICE_HELP, handle_errors, invocation, progress, say
from mmrec_cli.errors import bad_input, check_min, usage  # light: _common has loaded it already
from mmrec_cli.evaluation import CHUNK

NPROC_HELP = "Evaluate with N processes on this machine, each ranking a share of the users with the threads of 1 process (the same metrics and rankings as 1 process; set OMP_NUM_THREADS to share the cores out)."


@handle_errors
def eval_(
    paths: list[Path] = typer.Argument(..., metavar="MODEL DATASET", help="Model artifact (`mmrec finetune` / `mmrec transfer`) and the dataset artifact it was trained on; with --compare, two or more eval result files instead."),
    split: str = typer.Option("valid", "--split", help="valid | test. Choose settings on valid; evaluate test once, at the end."),
    features: str | None = typer.Option(None, "--features", help="The features artifact it was trained with."),
    mask_history: bool | None = typer.Option(None, "--mask-history/--no-mask-history", help="Remove the user's train items from the ranking (default: off for leave-one-out, on for the ratio split; MMRec's protocol)."),
    mask_valid: bool = typer.Option(False, "--mask-valid", help="With --mask-history and --split test: also remove the user's validation items."),
    ks: str = typer.Option("5,10,20,50", "--ks", help="Cut-offs for Recall/NDCG/MRR."),
    output: str | None = typer.Option(None, "-o", "--output", help="Write the metrics JSON here (default: stdout)."),
    rankings: str | None = typer.Option(None, "--rankings", help="Also write per-user rankings as JSON lines ('-' = stdout): user_id, targets, ranks (0-based: 0 = ranked first), top, scores (a TREC run instead: --rankings-format trec)."),
    rankings_format: str = typer.Option("jsonl", "--rankings-format", help="jsonl (the default: the JSON lines --rankings describes) | trec: a TREC run file, 'USER Q0 ITEM RANK SCORE mmrec' per ranked item (RANK from 1), and the split's qrels next to it as FILE.qrels ('USER 0 ITEM 1' per target), for trec_eval and ranx.", autocompletion=lambda: ["jsonl", "trec"]),
    top_k: int = typer.Option(20, "--top-k", help="Items per user in --rankings."),
    batch_size: int = typer.Option(512, "--batch-size", help="Users scored at once."),
    chunk: int = typer.Option(CHUNK, "--chunk", help="Items scored at once (bounds memory for large catalogues)."),
    report: str | None = typer.Option(None, "--report", help="Also write a self-contained HTML report: metrics, training and validation curves (with --compare: the comparison)."),
    compare: bool = typer.Option(False, "--compare", help="Compare eval result files (the arguments) side by side: metrics, mean ± std over seeds, paired tests on their --rankings files."),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    slices: bool = typer.Option(False, "--slice", help="Also report metrics per slice: target popularity in train (unseen, cold = seen 1-5 times, mid, popular) and history length."),
    probe: bool = typer.Option(False, "--probe", help="Zero-shot feature probe (AlignRec's): the one argument is a DATASET; rank items by the cosine of their --features to the mean of the user's history features, per modality and all together. No model."),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
) -> None:
    """Rank every item for every user of SPLIT and report Recall, NDCG and MRR at each cut-off."""
    check_min({"--nproc": nproc}, 1)
    if nproc != 1 and (compare or probe):
        raise usage(f"--nproc applies to model evaluation only, not to {'--compare' if compare else '--probe'}")
    if compare:
        return _compare([str(p) for p in paths], output, report)
    if probe:
        return _probe(paths, features, split, mask_history, ks, output)
    if len(paths) != 2:
        raise usage(f"expected MODEL DATASET, got {len(paths)} argument(s); to compare result files pass --compare")
    model, dataset = paths
    from mmrec_cli.data import dataset as D
    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate, mask_name
    from mmrec_cli.io.jsonl import jsonl_writer, write_json
    from mmrec_cli.training import loading

    if split not in ("valid", "test"):
        raise typer.BadParameter("--split must be valid or test")
    check_min({"--top-k": top_k, "--batch-size": batch_size, "--chunk": chunk}, 1)  # a negative --chunk gave wrong metrics
    cut = _cutoffs(ks)
    qrels = _check_rankings_format(rankings_format, rankings)
    _check_outputs(output, rankings, report, {"MODEL": model, "DATASET": dataset, "--features": features}, qrels)
    ds = D.load(str(dataset))
    if qrels:
        _check_trec_ids(ds, str(dataset))
    _, net, meta = loading.load_trained(str(model), ds, features)
    for k in (k for k in cut if k >= ds.num_items):
        say(f"note: --ks {k} is not below the catalogue's {ds.num_items} items: recall@{k} is 1 whatever the model")
    from mmrec_cli.training.distributed import resolve_device

    dev = resolve_device(device)
    net.to(dev)  # evaluation moves each batch to the model's device
    say(_device_line(dev, nproc))
    mask = (ds.protocol == "ratio") if mask_history is None else mask_history
    cfg = EvalConfig(split=split, ks=cut, mask_history=mask, mask_valid=mask_valid, batch_size=batch_size, chunk=chunk)
    model_fingerprint, ds_fingerprint = loading.fingerprint(str(model)), ds.fingerprint()
    load = functools.partial(_load_for_worker, str(model), str(dataset), features, dev, (model_fingerprint, ds_fingerprint))
    with progress(f"eval {split}", None) as advance:
        metrics, records = evaluate(net, ds, cfg, rankings_k=top_k if rankings else 0, on_batch=advance, nproc=nproc, load=load)
    result = {
        "metrics": metrics,
        "split": split,
        "mask_history": mask,
        "masked": mask_name(cfg),  # what was removed from the ranking: none | train | train+valid
        "protocol": ds.protocol,
        "model": {"path": str(model), "name": meta["model"], "fingerprint": model_fingerprint, "setting": loading.setting(meta), "best_epoch": meta.get("best_epoch")},
        "dataset": {"path": str(dataset), "fingerprint": ds_fingerprint},
        "command": invocation(),
        "seed": meta.get("seed"),
        "versions": meta.get("versions"),
        "rankings": rankings if rankings and rankings != "-" and not qrels else None,  # the JSON lines `--compare` reads
    }
    if qrels:
        result["trec"] = {"run": rankings, "qrels": qrels}
    if slices:
        from mmrec_cli.evaluation.slices import slice_metrics

        result["slices"] = slice_metrics(ds, split, records, cut)
    if qrels:
        _write_trec(rankings, qrels, records, ds)
    elif rankings:
        with jsonl_writer(rankings) as write:
            for rec in records:
                write({"user_id": ds.user_ids[rec["user"]], "targets": [ds.item_ids[i] for i in rec["targets"]], "ranks": rec["ranks"], "top": [ds.item_ids[i] for i in rec["top"]], "scores": [round(s, 6) for s in rec["scores"]]})
    write_json(output, result)
    if report:
        from mmrec_cli.evaluation import report as html_report
        from mmrec_cli.io.atomic import write_text

        write_text(report, html_report.eval_report(result, meta.get("history")))
    say(_summary(metrics, split))
    for kind, table in (result.get("slices") or {}).items():
        if isinstance(table, dict):
            for name, m in table.items():
                say(f"  {kind} {name}: " + _summary(m, split))


def _device_line(device: str, nproc: int) -> str:
    """'device: cpu (2 threads)'; with --nproc N, 'x N processes' after it (each process has those threads)."""
    from mmrec_cli.training.distributed import describe

    return f"device: {describe(device)}" + (f" x {nproc} processes" if nproc > 1 else "")


def _load_for_worker(model: str, dataset: str, features: str | None, device: str, fingerprints: tuple[str, str]):
    """(model, dataset) of an --nproc process, loaded as the command loaded them; refused if either file
    changed since, as the result records the command's."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import mismatch
    from mmrec_cli.training import loading

    ds = D.load(dataset)
    _, net, _ = loading.load_trained(model, ds, features)
    if (loading.fingerprint(model), ds.fingerprint()) != fingerprints:
        raise mismatch(f"{model} or {dataset} changed during the evaluation; run it again")
    return net.to(device), ds


def _cutoffs(ks: str) -> tuple[int, ...]:
    try:
        cut = tuple(int(k) for k in ks.split(","))
    except ValueError:
        cut = ()
    if not cut or min(cut) < 1:  # a cut-off of 0 would divide by zero in the metrics
        raise bad_input(f"--ks {ks}: expected cut-offs of 1 or more separated by commas, e.g. --ks 5,10,20")
    return cut


RANKINGS_FORMATS = ("jsonl", "trec")
TREC_RUN_NAME = "mmrec"  # the run's name, the last field of each line of a TREC run file


def _check_rankings_format(fmt: str, rankings: str | None) -> str | None:
    """The qrels path that --rankings-format trec writes next to the run file (None for jsonl)."""
    if fmt not in RANKINGS_FORMATS:
        raise usage(f"--rankings-format {fmt}: choose one of {', '.join(RANKINGS_FORMATS)}")
    if fmt == "jsonl":
        return None
    if rankings is None:
        raise usage("--rankings-format trec: give the run file with --rankings FILE")
    if rankings == "-":
        raise usage("--rankings - --rankings-format trec: the run file gets its qrels next to it (FILE.qrels); give a file path")
    return rankings + ".qrels"


def _check_trec_ids(ds, where: str) -> None:
    """A TREC line is split at white space: user and item ids must hold none."""
    for what, ids in (("user", ds.user_ids), ("item", ds.item_ids)):
        bad = next((i for i in ids if not i or any(c.isspace() for c in i)), None)
        if bad is not None:
            raise bad_input(f"{where}: {what} id {bad!r} holds white space, which a TREC run file cannot hold; use --rankings-format jsonl")


def _write_trec(run_path: str, qrels_path: str, records: list[dict], ds) -> None:
    """The run ('USER Q0 ITEM RANK SCORE mmrec', best first, RANK from 1; items removed from the ranking by
    --mask-history, scored -inf, left out) and the qrels of the evaluated targets ('USER 0 ITEM 1')."""
    import math

    from mmrec_cli.io.atomic import atomic_path

    with atomic_path(run_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            user = ds.user_ids[rec["user"]]
            rank = 0
            for item, score in zip(rec["top"], rec["scores"]):
                if score == -math.inf:
                    break
                rank += 1
                f.write(f"{user} Q0 {ds.item_ids[item]} {rank} {round(score, 6)!r} {TREC_RUN_NAME}\n")
    with atomic_path(qrels_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            user = ds.user_ids[rec["user"]]
            for item in dict.fromkeys(rec["targets"]):  # a target repeated (ratio split) is one relevant item
                f.write(f"{user} 0 {ds.item_ids[item]} 1\n")


def _check_outputs(output: str | None, rankings: str | None, report: str | None, inputs: dict, qrels: str | None = None) -> None:
    """Fail before any model or dataset is loaded if an output could not be written, or would replace an
    input or another output."""
    from mmrec_cli.io.atomic import check_distinct, check_writable

    outputs = {"-o": output, "--rankings": rankings, "qrels": qrels, "--report": report}
    for option, path in outputs.items():
        check_writable(path, option)
    check_distinct(outputs, inputs)


def _summary(metrics: dict, split: str) -> str:
    keys = [k for k in ("recall@10", "ndcg@10", "recall@50", "ndcg@50") if k in metrics]
    return f"{split} ({metrics['users']} users): " + "  ".join(f"{k} {metrics[k]:.4f}" for k in keys)


def _compare(paths: list[str], output: str | None, report: str | None) -> None:
    """eval --compare: the comparison as JSON (stdout or -o), a table on stderr, and --report HTML."""
    from mmrec_cli.evaluation import stats
    from mmrec_cli.io.jsonl import write_json

    _check_outputs(output, None, report, {"RESULT": paths})
    comparison = stats.compare_files(paths)
    write_json(output, comparison)
    for line in stats.text_table(comparison):
        say(line)
    if report:
        from mmrec_cli.evaluation import report as html_report
        from mmrec_cli.io.atomic import write_text

        write_text(report, html_report.comparison_report(comparison))


def _probe(paths: list[Path], features: str | None, split: str, mask_history: bool | None, ks: str, output: str | None) -> None:
    """eval --probe DATASET --features F: how well the features alone recommend (AlignRec's intermediate protocol)."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import feature_file as FE
    from mmrec_cli.io.jsonl import write_json
    from mmrec_cli.models.alignrec import probe

    if len(paths) != 1 or features is None:
        raise usage("--probe takes one DATASET and --features FEATS.safetensors")
    if split not in ("valid", "test"):
        raise bad_input("--split must be valid or test")
    _check_outputs(output, None, None, {"DATASET": paths[0], "--features": features})
    ds = D.load(str(paths[0]))
    feats, meta = FE.align(features, ds.item_ids)
    mask = (ds.protocol == "ratio") if mask_history is None else mask_history
    results = probe(ds, feats, split, _cutoffs(ks), mask)
    write_json(output, {"probe": results, "split": split, "mask_history": mask, "protocol": ds.protocol,
                        "dataset": {"path": str(paths[0]), "fingerprint": ds.fingerprint()},
                        "features": {"path": features, "fingerprint": meta["fingerprint"]}, "command": invocation()})
    for name, m in results.items():
        say(f"probe {name}: " + _summary(m, split))
