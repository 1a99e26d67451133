"""The library for notebooks and scripts: the same steps as the commands, on objects instead of files.

    from mmrec_cli import prepare, finetune, evaluate, recommend
    ds = prepare("examples/scientific")
    model = finetune("sasrec", ds, sets=["train.epochs=2"])
    evaluate(model, ds, split="valid")["ndcg@10"]
    recommend(model, ds, [["item id", ...]], top_k=10)

Each function is a thin layer over the modules the commands use (`data`, `training`, `evaluation`),
with the same defaults and the same strict configuration (`config` file < `sets` "key=value" <
keyword flags); nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmrec_cli.data.dataset import Dataset


def prepare(source: str, split: str = "loo", seed: int = 2020, items: str | None = None, kcore: int = 0, format: str = "auto", **options) -> Dataset:
    """A dataset from a UniSRec folder (or its file prefix) or an interactions file in any format `mmrec prepare`
    reads (`format`: auto, csv, sequences, recbole, movielens, amazon2014/2018/2023; `options`: the reading
    options of `mmrec_cli.data.formats.Options`, e.g. user_col="userId", time_unit="ms")."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.data import formats
    from mmrec_cli.data import prepare as P
    from mmrec_cli.io import unisrec

    fmt, _ = formats.resolve(source, formats.Options(format=format, **options))
    if fmt == "unisrec":
        ds = unisrec.import_dataset(source)
        if split == "ratio":
            ds.split, ds.protocol = D.ratio_labels(ds.offsets[1:] - ds.offsets[:-1], seed), "ratio"
        return ds
    loaded = formats.load(source, formats.Options(format=format, items=items, **options))
    return P.build(loaded.interactions, loaded.items, where=source, items_where=items or "", kcore=kcore, protocol=split, seed=seed)


def load_dataset(path: str) -> Dataset:
    from mmrec_cli.data import dataset as D

    return D.load(path)


def load_features(path: str, ds: Dataset) -> dict:
    """A features artifact's tensors, rows aligned to the dataset's items."""
    from mmrec_cli.io import feature_file

    tensors, _ = feature_file.align(path, ds.item_ids)
    return tensors


def finetune(model: str, ds: Dataset, features: dict | str | None = None, config: str | None = None, sets: Sequence[str] = (), init: str | None = None, **flags: Any):
    """Train `model` (a registered name) on `ds` and return it with its best validation epoch loaded.

    `features`: a features artifact's path or `load_features` tensors; `init`: a pre-trained model
    artifact; `flags`: settings by dotted name, e.g. finetune(..., **{"train.epochs": 5})."""
    from mmrec_cli import models
    from mmrec_cli.io import model_file
    from mmrec_cli.training import loading, stages

    spec = models.get(model)
    cfg = loading.resolve_stage(spec, config, list(sets), flags)
    if isinstance(features, str):
        features = load_features(features, ds)
    state = None if init is None else model_file.load(init)[0]
    net, _ = stages.finetune(model, ds, features, cfg.model, cfg.train, stages.Run(), state)
    return net.eval()


def load_model(path: str, ds: Dataset, features: str | None = None):
    """A trained model artifact, refusing other data or features than it was trained on."""
    from mmrec_cli.training import loading

    _, net, _ = loading.load_trained(path, ds, features)
    return net


def evaluate(model, ds: Dataset, split: str = "valid", ks: Sequence[int] = (5, 10, 20, 50), mask_history: bool | None = None) -> dict:
    """Full-ranking metrics ({"ndcg@10": ..., "recall@10": ..., "users": ...}) on `split`."""
    from mmrec_cli.evaluation.ranking import EvalConfig
    from mmrec_cli.evaluation.ranking import evaluate as run

    mask = ds.protocol == "ratio" if mask_history is None else mask_history
    metrics, _ = run(model, ds, EvalConfig(split=split, ks=tuple(ks), mask_history=mask))
    return metrics


def recommend(model, ds: Dataset, histories: Sequence[Sequence[str]], top_k: int = 10, exclude_history: bool = False) -> list[list[str]]:
    """The top-k item ids for each history (item ids, oldest first); unknown ids are skipped."""
    import numpy as np

    from mmrec_cli.evaluation import recommend as R

    index = {iid: i for i, iid in enumerate(ds.item_ids)}
    rows = [R.History(None, -1, np.asarray([index[i] for i in h if i in index], dtype=np.int64)) for h in histories]
    cfg = R.RecommendConfig(top_k=top_k, exclude_history=exclude_history)
    return [[ds.item_ids[i] for i in items] for _, items, _ in R.recommend(model, rows, ds.num_items, cfg)]

