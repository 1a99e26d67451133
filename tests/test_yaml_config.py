"""YAML config files beside JSON and TOML, and RecBole's flat key names as aliases of mmrec's keys."""

from __future__ import annotations

import dataclasses
import json

import pytest
from _cli import error_line, run
from safetensors.torch import load_file

from mmrec_cli import config as C
from mmrec_cli import models
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import artifacts
from mmrec_cli.training import loading

NESTED = {"model": {"hidden": 32, "layers": 1, "dropout": 0.25}, "train": {"lr": 0.003, "epochs": 7, "metric": "recall@20"}}
NESTED_YAML = """
model:
  hidden: 32
  layers: 1
  dropout: 0.25
train:
  lr: 0.003
  epochs: 7
  metric: recall@20
"""

# RecBole's SASRec settings, flat, as RecBole writes them; the same run as RECBOLE_AS_MMREC.
RECBOLE_YAML = """
# RecBole-style settings
MAX_ITEM_LIST_LENGTH: 8
hidden_size: 16
n_layers: 1
n_heads: 2
inner_size: 32
hidden_dropout_prob: 0.3
attn_dropout_prob: 0.2
initializer_range: 0.05
learning_rate: 0.005
train_batch_size: 4
epochs: 2
stopping_step: 3
eval_step: 1
valid_metric: MRR@10
weight_decay: 0.0
seed: 11
learner: adam
reproducibility: True
show_progress: False
"""
RECBOLE_AS_MMREC = {
    "model": {"max_len": 8, "hidden": 16, "layers": 1, "heads": 2, "inner": 32, "dropout": 0.3, "attn_dropout": 0.2, "init_std": 0.05},
    "train": {"lr": 0.005, "batch_size": 4, "epochs": 2, "patience": 3, "eval_every": 1, "metric": "mrr@10", "weight_decay": 0.0, "seed": 11},
}


def stage(model: str, path):
    return loading.resolve_stage(models.get(model), str(path), [], {})


def resolved(model: str, path) -> dict:
    """The resolved config as plain data (each resolution makes its own StageConfig class)."""
    return dataclasses.asdict(stage(model, path))


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_yaml_config_equals_the_same_json_config(tmp_path):
    yml = write(tmp_path / "c.yaml", NESTED_YAML)
    js = write(tmp_path / "c.json", json.dumps(NESTED))
    assert resolved("sasrec", yml) == resolved("sasrec", js)
    assert stage("sasrec", yml).model.hidden == 32 and stage("sasrec", yml).train.metric == "recall@20"
    assert resolved("sasrec", write(tmp_path / "c.yml", NESTED_YAML)) == resolved("sasrec", js)


def test_yaml_keeps_the_layers_and_the_strict_rules(tmp_path):
    yml = write(tmp_path / "c.yaml", NESTED_YAML)
    cfg = loading.resolve_stage(models.get("sasrec"), yml, ["train.lr=0.01"], {"train.epochs": 9})
    assert (cfg.train.lr, cfg.train.epochs, cfg.model.hidden) == (0.01, 9, 32)  # --set and flags still win
    with pytest.raises(MmrecError) as err:
        stage("sasrec", write(tmp_path / "u.yaml", "model:\n  hiden: 3\n"))
    assert str(err.value).startswith("config: unknown key 'model.hiden'; known keys of model: max_len, hidden,")
    with pytest.raises(MmrecError) as err:
        stage("sasrec", write(tmp_path / "t.yaml", "train:\n  epochs: yes\n"))
    assert str(err.value) == "config: train.epochs: True is not a valid int; use a whole number"  # YAML's yes is a bool


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: [1\n", "cannot parse config (expected ',' or ']', but got '<stream end>' at line 2, column 1); use JSON, TOML (.toml) or YAML (.yaml)"),
        ("- 1\n- 2\n", "a config file must hold an object of key/values"),
        ("", "a config file must hold an object of key/values"),
        ("1: 2\n", "key 1 is not a name; quote it or use a setting's name"),
        ("model:\n  null: 2\n", "key None in model is not a name; quote it or use a setting's name"),
        ("base: &b {hidden: 8}\nmodel: *b\n", "model repeats a YAML anchor; write the values out instead of aliasing them"),
        ("model: !!python/object:os.system {}\n", "cannot parse config (could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system' at line 1, column 8); use JSON, TOML (.toml) or YAML (.yaml)"),
    ],
)
def test_bad_yaml_is_one_line(tmp_path, text, message):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(MmrecError) as err:
        stage("sasrec", path)
    assert str(err.value) == f"{path}: {message}" and err.value.code == 3


def test_recbole_names_give_the_same_config_in_every_format(tmp_path):
    expected = resolved("sasrec", write(tmp_path / "mm.json", json.dumps(RECBOLE_AS_MMREC)))
    assert resolved("sasrec", write(tmp_path / "rb.yaml", RECBOLE_YAML)) == expected
    flat = {"MAX_ITEM_LIST_LENGTH": 8, "hidden_size": 16, "n_layers": 1, "inner_size": 32, "hidden_dropout_prob": 0.3, "attn_dropout_prob": 0.2,
            "initializer_range": 0.05, "learning_rate": 0.005, "train_batch_size": 4, "epochs": 2, "stopping_step": 3, "valid_metric": "MRR@10", "seed": 11}
    assert resolved("sasrec", write(tmp_path / "rb.json", json.dumps(flat))) == expected
    toml = "".join(f"{k} = {json.dumps(v)}\n" for k, v in flat.items())
    assert resolved("sasrec", write(tmp_path / "rb.toml", toml)) == expected


def test_an_alias_maps_to_the_models_own_field(tmp_path):
    """n_layers is SASRec's layers, MMMLP's layers and AlignRec's (LightGCN) layers; hidden_size is MISSRec's hidden."""
    path = write(tmp_path / "c.yaml", "n_layers: 3\n")
    assert stage("sasrec", path).model.layers == stage("mmmlp", path).model.layers == stage("alignrec", path).model.layers == 3
    assert stage("missrec", write(tmp_path / "h.yaml", "hidden_size: 40\nn_heads: 4\n")).model.hidden == 40


def test_the_baselines_recbole_names_map_to_their_settings(tmp_path):
    """GRU4Rec's and BERT4Rec's RecBole files use names of their own (embedding_size, num_layers, dropout_prob;
    hidden_act, layer_norm_eps, mask_ratio); hidden_act was refused before."""
    gru = stage("gru4rec", write(tmp_path / "g.yaml", "embedding_size: 32\nhidden_size: 48\nnum_layers: 2\ndropout_prob: 0.1\n")).model
    assert (gru.embedding, gru.hidden, gru.layers, gru.dropout) == (32, 48, 2, 0.1)
    bert = stage("bert4rec", write(tmp_path / "b.yaml", "hidden_act: relu\nlayer_norm_eps: 1.0e-6\nmask_ratio: 0.3\nft_ratio: 0.25\n")).model
    assert (bert.act, bert.norm_eps, bert.mask_ratio, bert.ft_ratio) == ("relu", 1e-6, 0.3, 0.25)


def test_an_alias_of_a_setting_the_model_lacks_is_an_unknown_key(tmp_path):
    path = write(tmp_path / "c.yaml", "n_layers: 2\n")
    with pytest.raises(MmrecError) as err:
        stage("missrec", path)
    known = "max_len, hidden, inner, heads, enc_layers, dec_layers, dropout, temperature, seq_seq_weight, orth_weight, interests, interest_ratio, knn_ratio, kmeans_iters, adapter, experts, fusion, ids, full, item_drop, item_drop_prob, feature_drop, init_std, bucket, recompute"
    assert str(err.value) == f"{path}: unknown key 'n_layers' (RecBole's name for model.layers, a setting this model does not have); known keys of model: {known}"
    path = write(tmp_path / "a.yaml", "MAX_ITEM_LIST_LENGTH: 20\n")
    with pytest.raises(MmrecError, match=r"unknown key 'MAX_ITEM_LIST_LENGTH' \(RecBole's name for model.max_len, a setting this model does not have\); known keys of model: embedding, layers,"):
        stage("alignrec", path)


def test_an_alias_and_its_mmrec_key_must_agree(tmp_path):
    path = write(tmp_path / "c.yaml", "learning_rate: 0.01\ntrain:\n  lr: 0.001\n")
    with pytest.raises(MmrecError) as err:
        stage("sasrec", path)
    assert str(err.value) == f"{path}: learning_rate = 0.01 and train.lr = 0.001 disagree; keep one of them"
    same = write(tmp_path / "s.yaml", "learning_rate: 1e-3\nvalid_metric: NDCG@20\ntrain:\n  lr: 0.001\n  metric: ndcg@20\n")  # YAML reads 1e-3 as text
    assert (stage("sasrec", same).train.lr, stage("sasrec", same).train.metric) == (0.001, "ndcg@20")
    with pytest.raises(MmrecError) as err:
        stage("sasrec", write(tmp_path / "b.yaml", "epochs: many\n"))
    assert str(err.value) == f"{tmp_path / 'b.yaml'}: epochs: 'many' is not a valid int; use a whole number"


@pytest.mark.parametrize(
    "text, message",
    [
        ("eval_args:\n  mode: full\n", "RecBole key 'eval_args' has no mmrec setting: the split is made by `mmrec prepare --split`, and evaluation always ranks all items; remove it"),
        ("metrics: [Recall, NDCG]\n", "RecBole key 'metrics' has no mmrec setting: `mmrec eval` ranks all items and reports recall, ndcg, mrr and hit at 5, 10, 20 and 50; train.metric picks the validation metric; remove it"),
        ("topk: [10]\n", "RecBole key 'topk' has no mmrec setting: `mmrec eval` ranks all items and reports recall, ndcg, mrr and hit at 5, 10, 20 and 50; train.metric picks the validation metric; remove it"),
        ("loss_type: CE\n", "RecBole key 'loss_type' has no mmrec setting: each model trains with its paper's loss (see `mmrec config MODEL` for its switches); remove it"),
        ("data_path: dataset/\n", "RecBole key 'data_path' has no mmrec setting: `mmrec prepare` reads the data and makes the splits (docs/data_formats.md); give its artifact as DATASET; remove it"),
        ("learner: sgd\n", "RecBole key 'learner' can only be adam (mmrec trains with Adam); remove it"),
        ("reproducibility: false\n", "RecBole key 'reproducibility' can only be true (mmrec runs are deterministic for a seed); remove it"),
        ("hidden_sizes: 64\n", None),
    ],
)
def test_recbole_keys_without_an_equivalent_are_refused_with_the_reason(tmp_path, text, message):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(MmrecError) as err:
        stage("sasrec", path)
    assert str(err.value) == (f"{path}: {message}" if message else "config: unknown key 'hidden_sizes'; known keys: model, train")


def test_the_cli_trains_the_same_model_from_recbole_names(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    rb = write(tmp_path / "recbole_style.yaml", RECBOLE_YAML)
    mm = write(tmp_path / "mmrec.json", json.dumps(RECBOLE_AS_MMREC))
    for conf, out in ((rb, "rb.safetensors"), (mm, "mm.safetensors")):
        r = run("finetune", "sasrec", ds, "--config", conf, "-o", tmp_path / out)
        assert r.exit_code == 0, r.output
    a, b = load_file(tmp_path / "rb.safetensors"), load_file(tmp_path / "mm.safetensors")
    assert sorted(a) == sorted(b) and all(a[k].equal(b[k]) for k in a)
    meta_a, meta_b = artifacts.read_meta(tmp_path / "rb.safetensors", "model"), artifacts.read_meta(tmp_path / "mm.safetensors", "model")
    assert meta_a["config"] == meta_b["config"] and meta_a["history"] == meta_b["history"]
    assert meta_a["config"]["train"]["metric"] == "mrr@10" and meta_a["config"]["model"]["init_std"] == 0.05


def test_the_cli_says_a_conflict_in_one_line(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    conf = write(tmp_path / "c.yaml", "epochs: 3\ntrain: {epochs: 4}\n")
    r = run("finetune", "sasrec", ds, "--config", conf, "-o", tmp_path / "m.safetensors")
    assert r.exit_code == 3
    assert error_line(r) == f"error: {conf}: epochs = 3 and train.epochs = 4 disagree; keep one of them"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "ds.safetensors"]


def test_plain_dataclasses_keep_their_own_names():
    """An alias applies only where the class has no field of that name (and has the target): generic configs are untouched."""
    from dataclasses import dataclass

    @dataclass
    class Own:
        epochs: int = 1

    assert C.recbole_aliases(Own, {"epochs": 5}, "c.yaml") == {"epochs": 5}
    with pytest.raises(MmrecError, match="c.yaml: unknown key 'learning_rate' .RecBole's name for train.lr, a setting this model does not have.; known keys: epochs"):
        C.recbole_aliases(Own, {"learning_rate": 0.1}, "c.yaml")


def test_the_recbole_key_table_in_the_docs_names_the_models_that_have_each_key():
    """docs/usage.md lists, per RecBole key of a model setting, the models whose config has that setting."""
    import dataclasses
    import re
    from pathlib import Path

    from mmrec_cli import models
    from mmrec_cli.config import RECBOLE_ALIASES

    text = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `model\.\w+` \| ([^|]+) \|$", text, re.M))
    for alias, key in RECBOLE_ALIASES.items():
        if not key.startswith("model."):
            continue
        field = key.split(".", 1)[1]
        have = [n for n in models.MODELS if field in {f.name for f in dataclasses.fields(models.get(n).config)}]
        listed = [m.split(" (")[0] for m in rows[alias].split(", ")]
        assert listed == have, alias
