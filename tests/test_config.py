from dataclasses import dataclass, field

import pytest

from mmrec_cli import config as C
from mmrec_cli.errors import MmrecError


@dataclass
class Inner:
    lr: float = 0.1
    epochs: int = 3


@dataclass
class Outer:
    name: str = "a"
    flag: bool = False
    ks: tuple[int, ...] = (5, 10)
    train: Inner = field(default_factory=Inner)


def test_layers_apply_in_order(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"name": "file", "train": {"lr": 0.5, "epochs": 7}}')
    cfg = C.resolve(Outer, str(f), ["train.lr=0.25", "flag=true"], {"train.epochs": 9, "name": None})
    assert cfg == Outer(name="file", flag=True, train=Inner(lr=0.25, epochs=9))


def test_toml_and_lists(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('ks = [1, 2]\n[train]\nepochs = 4\n')
    cfg = C.resolve(Outer, str(f), ["ks=3,4"])
    assert cfg.ks == (3, 4) and cfg.train.epochs == 4


def test_unknown_key_is_an_error():
    with pytest.raises(MmrecError, match="config: unknown key 'train.lrr'; known keys of train: lr, epochs"):
        C.resolve(Outer, None, ["train.lrr=1"])


def test_bad_value_is_an_error():
    with pytest.raises(MmrecError, match=r"config: train.epochs: 'many' is not a valid int"):
        C.resolve(Outer, None, ["train.epochs=many"])
    with pytest.raises(MmrecError, match="expected key=value"):
        C.resolve(Outer, None, ["oops"])


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(MmrecError, match="config file not found"):
        C.resolve(Outer, str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MmrecError, match="cannot parse config"):
        C.resolve(Outer, str(bad))


def test_mmrec_config_prints_the_resolved_settings(tmp_path):
    import json

    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    conf = tmp_path / "c.json"
    conf.write_text('{"train": {"epochs": 7}, "model": {"hidden": 32}}')
    r = CliRunner().invoke(app, ["config", "sasrec", "--config", str(conf), "--set", "model.hidden=16"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["train"]["epochs"], out["model"]["hidden"], out["model"]["max_len"], out["stages"]) == (7, 16, 50, ["finetune"])
    r = CliRunner().invoke(app, ["config", "sasrec", "--set", "model.hiden=16"])
    assert r.exit_code == 3 and "unknown key 'model.hiden'" in r.output


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.epochs=true", "config: train.epochs: True is not a valid int; use a whole number"),  # was 1 epoch
        ("train.epochs=false", "config: train.epochs: False is not a valid int; use a whole number"),
        ("train.lr=true", "config: train.lr: True is not a valid float; use a number"),
        ("flag=1", "config: flag: 1 is not a valid bool; use true or false"),  # was True
        ("flag=0", "config: flag: 0 is not a valid bool; use true or false"),
        ("flag=0.0", "config: flag: 0.0 is not a valid bool; use true or false"),
        ('flag="1"', "config: flag: '1' is not a valid bool; use true or false"),
        ("ks=5,true", "config: ks: 'true' is not a valid int; use a whole number"),
        ("train.epochs=2.5", "config: train.epochs: 2.5 is not a valid int; use a whole number"),
    ],
)
def test_coercion_is_strict(item, message):
    """A bool is no number and a number no bool: `--set model.layers=true` trained one layer."""
    with pytest.raises(MmrecError) as err:
        C.resolve(Outer, None, [item])
    assert str(err.value) == message


def test_coercion_keeps_what_is_meant(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('flag = "Yes"\n[train]\nepochs = 4.0\nlr = 1\n')
    assert C.resolve(Outer, str(f)) == Outer(flag=True, train=Inner(lr=1.0, epochs=4))
    assert C.resolve(Outer, None, ["flag=false", "train.epochs=\"7\"", "train.lr=2"]) == Outer(flag=False, train=Inner(lr=2.0, epochs=7))
    assert isinstance(C.resolve(Outer, None, ["train.lr=2"]).train.lr, float)


def test_a_model_brings_its_papers_selection_defaults():
    """MSM4SR's official code selects on Recall@20 with patience 20 and clips gradients at 5; AlignRec's on Recall@20.
    Every model selected on NDCG@10 with patience 10 before. A config file or --set still wins."""
    from mmrec_cli import models
    from mmrec_cli.training import loading

    msm = loading.resolve_stage(models.get("msm4sr"), None, [], {})
    assert (msm.train.metric, msm.train.patience, msm.train.clip_grad) == ("recall@20", 20, 5.0)
    assert loading.resolve_stage(models.get("alignrec"), None, [], {}).train.metric == "recall@20"
    assert loading.resolve_stage(models.get("sasrec"), None, [], {}).train.metric == "ndcg@10"
    assert loading.resolve_stage(models.get("msm4sr"), None, ["train.metric=ndcg@10"], {"train.patience": 3}).train.patience == 3
    assert loading.resolve_stage(models.get("msm4sr"), None, ["train.metric=ndcg@10"], {}).train.metric == "ndcg@10"


def test_every_example_config_resolves_for_the_model_it_is_named_after():
    """examples/configs/<model>[_<variant>].json: strict keys and ranges, as `--config` reads it."""
    from pathlib import Path

    from mmrec_cli import models
    from mmrec_cli.training import loading

    folder = Path(__file__).resolve().parents[1] / "examples" / "configs"
    model_of = {f: f.stem.split("_")[0] for f in sorted(folder.glob("*.json"))}
    assert set(model_of.values()) == set(models.MODELS)  # one config at least for every model, none for a model that is not
    for f, model in model_of.items():
        loading.resolve_stage(models.get(model), str(f), [], {})  # raises on an unknown key or a value out of range
