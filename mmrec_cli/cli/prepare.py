"""mmrec prepare: raw interactions (+ items) or UniSRec files -> dataset artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, invocation, say


@handle_errors
def prepare(
    source: str = typer.Argument(..., help="Interactions file (.csv/.tsv with a header, or JSON lines; '-' = stdin, read as JSON lines), or a UniSRec folder / <folder>/<name> prefix."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset artifact to write (.safetensors)."),
    items: str | None = typer.Option(None, "--items", help="Items JSONL (item_id, text, images); every interacted item must be in it."),
    fmt: str = typer.Option("auto", "--format", help="auto | interactions | unisrec."),
    split: str = typer.Option("loo", "--split", help="loo (chronological leave-one-out) | ratio (per-user random 8:1:1)."),
    kcore: int = typer.Option(0, "--kcore", help="Keep only users and items with at least K interactions (iterated)."),
    max_history: int = typer.Option(0, "--max-history", help="Keep each user's last N interactions (0 = all)."),
    drop_short: bool = typer.Option(False, "--drop-short", help="Drop users with fewer than 3 interactions instead of failing."),
    seed: int = typer.Option(2020, "--seed", help="Seed of the ratio split."),
    features_out: Path | None = typer.Option(None, "--features-out", help="UniSRec only: also write its .feat* files as a features artifact."),
    feature: list[str] = typer.Option(["text=feat1CLS", "image=feat3CLS"], "--feature", help="UniSRec only: modality=suffix of a feature file."),
    items_out: Path | None = typer.Option(None, "--items-out", help="UniSRec only: also write the items as JSONL (for `mmrec extract`)."),
) -> None:
    """Build a dataset: id maps, chronological order, optional k-core, and the train/valid/test split."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import usage
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct, check_writable

    if split not in ("loo", "ratio"):
        raise typer.BadParameter("--split must be loo or ratio")
    if fmt not in ("auto", "interactions", "unisrec"):
        raise typer.BadParameter("--format must be auto, interactions or unisrec")
    if min(kcore, max_history, seed) < 0:  # a negative seed also fails numpy's generator of the ratio split
        raise typer.BadParameter("--kcore, --max-history and --seed must be 0 or more")
    if items == "-" and source == "-":  # stdin can be read once
        raise usage("--items -: standard input already holds the interactions (SOURCE -); give the items as a file")
    for path, option in ((output, "-o"), (features_out, "--features-out")):
        check_artifact_path(path, option)
    check_writable(items_out, "--items-out")  # JSON lines: '-' is stdout
    is_unisrec = fmt == "unisrec" or (fmt == "auto" and _looks_unisrec(source))
    read = _unisrec_files(source) if is_unisrec else source
    check_distinct({"-o": output, "--features-out": features_out, "--items-out": items_out}, {"SOURCE": read, "--items": items})
    inv = invocation()
    if is_unisrec:
        ds, inputs = _from_unisrec(source, features_out, feature, items_out, inv)
        if split == "ratio":
            ds.split, ds.protocol = D.ratio_labels(ds.offsets[1:] - ds.offsets[:-1], seed), "ratio"
    else:
        if features_out or items_out:  # else they would be skipped, and a later step read a stale file
            raise typer.BadParameter(f"--features-out and --items-out are for a UniSRec folder; {source} is an interactions file")
        ds, inputs = _from_records(source, items, kcore, max_history, split, seed, drop_short)
    config = {"split": split, "kcore": kcore, "max_history": max_history, "seed": seed, "format": "unisrec" if is_unisrec else "interactions"}
    D.save(ds, str(output), inv, config, inputs)
    say(f"wrote {output}: {ds.num_users} users, {ds.num_items} items, {len(ds.items)} interactions ({ds.protocol} split)")


def _looks_unisrec(source: str) -> bool:
    p = Path(source)
    return p.is_dir() or (p.parent / f"{p.name}.test.inter").is_file()


def _unisrec_files(source: str) -> list[Path]:
    """The files of a UniSRec dataset (<folder>/<name>.*): the inputs an output must not replace."""
    from mmrec_cli.io import unisrec

    folder, name = unisrec.locate(source)
    return sorted(folder.glob(f"{name}.*"))


def _from_records(source, items, kcore, max_history, split, seed, drop_short):
    from mmrec_cli.data import prepare, records

    inters = records.read_interactions(source)
    item_map = records.read_items(items) if items else None
    ds = prepare.build(inters, item_map, where=source, items_where=items or "", kcore=kcore, max_history=max_history, protocol=split, seed=seed, drop_short=drop_short)
    inputs = {"interactions": _fp(source)}
    if items:
        inputs["items"] = _fp(items)
    return ds, inputs


def _from_unisrec(source, features_out, feature, items_out, inv):
    from mmrec_cli.io import unisrec

    ds = unisrec.import_dataset(source)
    folder, name = unisrec.locate(source)
    inputs = {s: _fp(str(folder / f"{name}.{s}.inter")) for s in ("train", "valid", "test")}
    if features_out:
        _write_unisrec_features(folder, name, ds, feature, features_out, inv)
    if items_out:
        _write_items(unisrec.read_text(source), ds.item_ids, items_out)
    return ds, inputs


def _write_unisrec_features(folder, name, ds, feature, out, inv) -> None:
    from mmrec_cli.io import feature_file as features
    from mmrec_cli.io import unisrec

    tensors, encoders, inputs = {}, {}, {}
    for spec in feature:
        modality, _, suffix = spec.partition("=")
        if not suffix or "_" in modality:
            raise typer.BadParameter(f"--feature {spec}: expected modality=suffix, e.g. text=feat1CLS")
        path = folder / f"{name}.{suffix}"
        tensors[modality] = unisrec.read_feature_file(path, ds.num_items)
        encoders[modality] = {"source": "unisrec", "file": path.name, "dim": int(tensors[modality].shape[1])}
        inputs[modality] = _fp(str(path))
    features.save(str(out), tensors, ds.item_ids, inv, {"feature": list(feature)}, inputs, encoders)
    say(f"wrote {out}: " + ", ".join(f"{m} {tuple(t.shape)}" for m, t in tensors.items()))


def _write_items(texts: dict, item_ids: list[str], out) -> None:
    from mmrec_cli.io.jsonl import jsonl_writer

    with jsonl_writer(str(out)) as write:
        for iid in item_ids:
            write({"item_id": iid, "text": texts.get(iid, "")})
    say(f"wrote {out}: {len(item_ids)} items")


def _fp(path: str) -> dict:
    """An input's record in the metadata; standard input ('-') has no file to fingerprint."""
    from mmrec_cli.io import artifacts

    if path == "-":
        return {"path": "-", "fingerprint": None}
    return {"path": path, "fingerprint": artifacts.fingerprint_file(path)}
