"""mmrec prepare: raw interactions (+ items) or UniSRec files -> dataset artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, invocation, say

FORMAT_HELP = (
    "auto (sniffs the name and first lines, and says what it chose) | csv | unisrec | sequences | recbole | movielens "
    "| amazon2014 | amazon2018 | amazon2023 (layouts: docs/data_formats.md)."
)


def _formats():
    from mmrec_cli.data.formats import FORMATS

    return list(FORMATS)


@handle_errors
def prepare(
    source: str = typer.Argument(..., help="Interactions file (any --format; .gz/.bz2 read as they are; '-' = stdin, read as JSON lines), or a UniSRec folder / <folder>/<name> prefix."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset artifact to write (.safetensors)."),
    items: str | None = typer.Option(None, "--items", help="Items: JSONL (item_id, text, images; every interacted item must be in it), 'id<TAB>title' lines, or Amazon metadata JSON lines (meta_*.json.gz)."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP, autocompletion=_formats),
    user_col: str | None = typer.Option(None, "--user-col", help="The user column: a header name (JSON key), or a 0-based position with --no-header."),
    item_col: str | None = typer.Option(None, "--item-col", help="The item column (name or 0-based position)."),
    time_col: str | None = typer.Option(None, "--time-col", help="The timestamp column (name or 0-based position): numbers, or ISO-8601 dates."),
    rating_col: str | None = typer.Option(None, "--rating-col", help="The rating column, for --min-rating (name or 0-based position)."),
    sep: str | None = typer.Option(None, "--sep", help="Field delimiter (default by extension: ',' for .csv, tab for .tsv/.txt/.inter; '\\t' = tab)."),
    header: bool = typer.Option(True, "--header/--no-header", help="Whether the first line names the columns (--no-header: name them by position)."),
    time_unit: str | None = typer.Option(None, "--time-unit", help="s | ms: the unit of numeric timestamps (default: ms when over 1e11, else s).", autocompletion=lambda: ["s", "ms"]),
    min_rating: float | None = typer.Option(None, "--min-rating", help="Keep interactions with a rating of at least X (formats with ratings)."),
    dedup: bool = typer.Option(False, "--dedup", help="Drop exact repeats of a (user, item, timestamp) (default: keep them, counted)."),
    item_text_fields: str | None = typer.Option(None, "--item-text-fields", help="Amazon metadata: the text fields, comma separated, each a sentence (default title,description; also feature, categories, brand)."),
    split: str = typer.Option("loo", "--split", help="loo (chronological leave-one-out) | ratio (per-user random 8:1:1) | time (global: the oldest 80 % of all interactions train, the next 10 % valid, the last 10 % test)."),
    kcore: int = typer.Option(0, "--kcore", help="Keep only users and items with at least K interactions (iterated)."),
    max_history: int = typer.Option(0, "--max-history", help="Keep each user's last N interactions (0 = all)."),
    drop_short: bool = typer.Option(False, "--drop-short", help="Drop users with fewer than 3 interactions instead of failing."),
    drop_untexted: bool = typer.Option(False, "--drop-items-without-text", help="With --items: drop the interactions with items that have no text (no record, or an empty text) before the split, so that every item has text (counted on stderr); users left with fewer than 3 interactions then need --drop-short."),
    seed: int = typer.Option(2020, "--seed", help="Seed of the ratio split."),
    features_out: Path | None = typer.Option(None, "--features-out", help="UniSRec only: also write its .feat* files as a features artifact."),
    feature: list[str] = typer.Option(["text=feat1CLS", "image=feat3CLS"], "--feature", help="UniSRec only: modality=suffix of a feature file."),
    items_out: Path | None = typer.Option(None, "--items-out", help="Also write the dataset's items as JSONL (item_id, text, images) for `mmrec extract` (a UniSRec folder, or with --items)."),
) -> None:
    """Build a dataset: id maps, chronological order, optional k-core, and the train/valid/test split."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.data import formats
    from mmrec_cli.errors import check_min, usage
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct, check_writable

    if split not in ("loo", "ratio", "time"):
        raise typer.BadParameter("--split must be loo, ratio or time")
    if fmt not in formats.FORMATS and fmt != "interactions":  # `interactions`: the name of `csv` before there were others
        raise typer.BadParameter(f"--format must be one of {formats.format_list()}")
    check_min({"--kcore": kcore, "--max-history": max_history, "--seed": seed}, 0)  # a negative seed fails numpy's generator
    if items == "-" and source == "-":  # stdin can be read once
        raise usage("--items -: standard input already holds the interactions (SOURCE -); give the items as a file")
    fields = [f.strip() for f in item_text_fields.split(",") if f.strip()] if item_text_fields is not None else None
    fmt = "csv" if fmt == "interactions" else fmt
    opts = formats.Options(fmt, user_col, item_col, time_col, rating_col, sep, header, time_unit, min_rating, dedup, items, fields, drop_untexted)
    formats.check_options(opts)
    for path, option in ((output, "-o"), (features_out, "--features-out")):
        check_artifact_path(path, option)
    check_writable(items_out, "--items-out")  # JSON lines: '-' is stdout
    is_unisrec = fmt == "unisrec" or (fmt == "auto" and _looks_unisrec(source))
    read = _unisrec_files(source) if is_unisrec else source
    check_distinct({"-o": output, "--features-out": features_out, "--items-out": items_out}, {"SOURCE": read, "--items": items})
    inv = invocation()
    config = {"split": split, "kcore": kcore, "max_history": max_history, "seed": seed}
    notes: list[str] = []
    if is_unisrec:
        formats.check_applies("unisrec", opts)
        if drop_untexted:
            raise usage("--drop-items-without-text does not apply to a UniSRec folder (its files fix the split); use it with an interactions file and --items")
        ds, inputs = _from_unisrec(source, features_out, feature, items_out, inv)
        if split == "ratio":
            ds.split, ds.protocol = D.ratio_labels(ds.offsets[1:] - ds.offsets[:-1], seed), "ratio"
        elif split == "time":
            raise typer.BadParameter("--split time needs timestamps; a UniSRec folder has none (use loo or ratio)")
        config["format"] = "unisrec"
        notes = [] if fmt == "unisrec" else ["format: unisrec (auto: a UniSRec folder (<name>.test.inter))"]
    else:
        if features_out:  # else it would be skipped, and a later step read a stale file
            raise typer.BadParameter(f"--features-out is for a UniSRec folder; {source} is an interactions file")
        if items_out and not items:
            raise typer.BadParameter(f"--items-out writes the items of --items; give --items for {source} (item texts), or drop --items-out")
        if drop_untexted and not items:
            raise usage(f"--drop-items-without-text drops the items that --items gives no text; give --items for {source}, or drop the option")
        loaded, ds, inputs = _from_records(source, opts, kcore, max_history, split, seed, drop_short, drop_untexted)
        notes = list(loaded.notes)
        config["format"], config["mapping"] = loaded.format, loaded.mapping
        if drop_untexted:
            config["drop_items_without_text"] = True
        if items_out:
            _write_items({iid: loaded.items[iid] for iid in ds.item_ids}, ds.item_ids, items_out, quiet=True)
    D.save(ds, str(output), inv, config, inputs)
    for line in notes:
        say(line)
    say(f"wrote {output}: {ds.num_users} users, {ds.num_items} items, {len(ds.items)} interactions ({ds.protocol} split)")
    if items_out and not is_unisrec:
        say(f"wrote {items_out}: {ds.num_items} items")


def _looks_unisrec(source: str) -> bool:
    p = Path(source)
    return p.is_dir() or (p.parent / f"{p.name}.test.inter").is_file()


def _unisrec_files(source: str) -> list[Path]:
    """The files of a UniSRec dataset (<folder>/<name>.*): the inputs an output must not replace."""
    from mmrec_cli.io import unisrec

    folder, name = unisrec.locate(source)
    return sorted(folder.glob(f"{name}.*"))


def _from_records(source, opts, kcore, max_history, split, seed, drop_short, drop_untexted):
    """(loaded, dataset, inputs) of an interactions file: by the columnar fast path where it reads the file, else
    row by row (formats.load, then prepare.build), the reference that words every error. The inputs' fingerprints
    (a hash of every byte) are taken meanwhile on another thread, when they are regular files."""
    from concurrent.futures import ThreadPoolExecutor

    from mmrec_cli.data import columnar, formats, prepare

    regular = all(Path(p).is_file() for p in (source, opts.items) if p and p != "-")  # a pipe can be read once
    with ThreadPoolExecutor(1) as pool:
        inputs = pool.submit(_inputs, source, opts.items) if regular else None
        loaded_ds = columnar.prepare(source, opts, columnar.Settings(kcore, max_history, split, seed, drop_short, drop_untexted))
        if loaded_ds is None:
            loaded = formats.load(source, opts)
            ds = prepare.build(
                loaded.interactions, loaded.items, where=source, items_where=opts.items or "", kcore=kcore, max_history=max_history, protocol=split,
                seed=seed, drop_short=drop_short, drop_items_without_text=drop_untexted, notes=loaded.notes,
            )
            loaded_ds = loaded, ds
        return (*loaded_ds, inputs.result() if inputs else _inputs(source, opts.items))


def _inputs(source: str, items: str | None) -> dict:
    """The interactions' and items' records in the metadata."""
    out = {"interactions": _fp(source)}
    if items:
        out["items"] = _fp(items)
    return out


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


def _write_items(texts: dict, item_ids: list[str], out, quiet: bool = False) -> None:
    """The items as JSONL: a text string per item (UniSRec), or an `Item` (text as sentences, and images)."""
    from mmrec_cli.io.jsonl import jsonl_writer

    with jsonl_writer(str(out)) as write:
        for iid in item_ids:
            item = texts.get(iid, "")
            if isinstance(item, str):
                write({"item_id": iid, "text": item})
            else:
                write({"item_id": iid, "text": item.text[0] if len(item.text) == 1 else item.text or "", "images": item.images})
    if not quiet:
        say(f"wrote {out}: {len(item_ids)} items")


def _fp(path: str) -> dict:
    """An input's record in the metadata; standard input ('-') has no file to fingerprint."""
    from mmrec_cli.io import artifacts

    if path == "-":
        return {"path": "-", "fingerprint": None}
    return {"path": path, "fingerprint": artifacts.fingerprint_file(path)}
