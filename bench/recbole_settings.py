"""mmrec's example settings of SASRec, GRU4Rec and BERT4Rec under RecBole 1.2.1's key names, and the evaluation
protocol both tools run under (bench/recbole_run.py). Plain Python: imports neither RecBole nor mmrec, so the mapping
is tested in mmrec's own environment (tests/test_recbole_settings.py)."""

from __future__ import annotations

MODELS = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec"}

# mmrec config key -> RecBole key (the reverse of mmrec_cli/config.py's RECBOLE_ALIASES), per model where they differ.
TRANSFORMER = {
    "model.max_len": "MAX_ITEM_LIST_LENGTH",
    "model.hidden": "hidden_size",
    "model.layers": "n_layers",
    "model.heads": "n_heads",
    "model.inner": "inner_size",
    "model.dropout": "hidden_dropout_prob",
    "model.attn_dropout": "attn_dropout_prob",
    "model.init_std": "initializer_range",
    "model.act": "hidden_act",
    "model.norm_eps": "layer_norm_eps",
    "model.mask_ratio": "mask_ratio",
    "model.ft_ratio": "ft_ratio",
}
KEYS = {
    "sasrec": TRANSFORMER,
    "bert4rec": TRANSFORMER,
    "gru4rec": {
        "model.max_len": "MAX_ITEM_LIST_LENGTH",
        "model.embedding": "embedding_size",
        "model.hidden": "hidden_size",
        "model.layers": "num_layers",
        "model.dropout": "dropout_prob",
    },
}
TRAIN_KEYS = {
    "train.epochs": "epochs",
    "train.batch_size": "train_batch_size",
    "train.lr": "learning_rate",
    "train.patience": "stopping_step",
    "train.seed": "seed",
    "train.weight_decay": "weight_decay",
    "train.eval_every": "eval_step",
}
# Per model, the mmrec keys that RecBole 1.2.1 has no setting for, with the value under which both do the same
# thing. The config must set each one: where mmrec's default differs, leaving it out would compare two algorithms.
SAME_AS_RECBOLE = {
    "sasrec": {},
    "gru4rec": {
        "model.instances": "prefixes",  # RecBole trains on every prefix of a training sequence
    },
    "bert4rec": {
        "model.output_bias": True,  # RecBole 1.2 always has the output bias
        "model.loss_masks": "recbole",  # RecBole's rule for which masked positions the loss reads
        "model.drop_oldest": True,  # RecBole's evaluation rows: [mask] appended, then the first column dropped
    },
}
METRIC_NAMES = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision"}

# The protocol, the same for every model (RecBole's defaults where it has them).
PROTOCOL = {
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "metrics": ["Recall", "NDCG"],
    "topk": [10, 20, 50],
    "valid_metric": "NDCG@10",
    "stopping_step": 10,
    "eval_step": 1,
    "seed": 2020,
    "reproducibility": True,
    "gpu_id": "",  # the CPU
    "show_progress": False,
    "metric_decimal_place": 6,
}


def settings(model: str, mmrec_config: dict) -> dict:
    """RecBole's settings for `model` from mmrec's config (nested {"model": {...}, "train": {...}}); a key with no
    RecBole counterpart stops the run, so that a changed example config is never silently left out, and so does a config
that leaves out one of the model's SAME_AS_RECBOLE keys or sets it otherwise."""
    out: dict = {}
    table = {**KEYS[model], **TRAIN_KEYS}
    same = SAME_AS_RECBOLE[model]
    flat = {f"{section}.{name}" for section, values in mmrec_config.items() if isinstance(values, dict) for name in values}
    for key, value in same.items():
        if key not in flat:
            raise SystemExit(f"recbole_run: {key} is not set: RecBole 1.2.1 only does {value!r}; set it in the mmrec config")
    for section, values in mmrec_config.items():
        if section not in ("model", "train") or not isinstance(values, dict):
            raise SystemExit(f"recbole_run: unexpected top-level key {section!r} in the mmrec config")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key == "train.metric":
                metric, _, k = str(value).partition("@")
                out["valid_metric"] = f"{METRIC_NAMES[metric.lower()]}@{k}"
            elif key in same:
                if value != same[key]:
                    raise SystemExit(f"recbole_run: {key} = {value!r}: RecBole 1.2.1 only does {same[key]!r}")
            elif key in table:
                out[table[key]] = value
            else:
                raise SystemExit(f"recbole_run: {key} of the mmrec config has no RecBole {MODELS[model]} setting here")
    return out
