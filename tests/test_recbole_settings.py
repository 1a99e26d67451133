"""bench/recbole_settings.py: an mmrec example config mapped to RecBole 1.2.1's settings, refusing what RecBole cannot do."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("recbole_settings", ROOT / "bench" / "recbole_settings.py")
rs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(rs)


def example(model: str) -> dict:
    return json.loads((ROOT / "examples" / "configs" / f"{model}.json").read_text())


@pytest.mark.parametrize("model", sorted(rs.MODELS))
def test_every_example_config_maps_to_recbole(model):
    out = {**rs.PROTOCOL, **rs.settings(model, example(model))}
    assert out["MAX_ITEM_LIST_LENGTH"] == 50 and out["valid_metric"] == "NDCG@10" and out["stopping_step"] == 10


def test_bert4rec_settings_under_recbole_names():
    out = rs.settings("bert4rec", example("bert4rec"))
    assert (out["hidden_size"], out["n_layers"], out["mask_ratio"], out["ft_ratio"], out["train_batch_size"]) == (64, 2, 0.2, 0.5, 2048)
    assert "loss_masks" not in out and "drop_oldest" not in out  # mmrec's own keys, not RecBole's


@pytest.mark.parametrize("key", ["loss_masks", "drop_oldest", "output_bias"])
def test_a_bert4rec_config_that_leaves_out_recboles_behaviour_is_refused(key):
    cfg = example("bert4rec")
    del cfg["model"][key]
    with pytest.raises(SystemExit, match=f"model.{key} is not set: RecBole 1.2.1 only does"):
        rs.settings("bert4rec", cfg)


def test_a_different_value_is_refused_and_a_key_of_another_model_is_unknown():
    cfg = example("bert4rec")
    cfg["model"]["drop_oldest"] = False
    with pytest.raises(SystemExit, match="model.drop_oldest = False: RecBole 1.2.1 only does True"):
        rs.settings("bert4rec", cfg)
    cfg = example("sasrec")
    cfg["model"]["instances"] = "prefixes"  # GRU4Rec's setting
    with pytest.raises(SystemExit, match="model.instances of the mmrec config has no RecBole SASRec setting"):
        rs.settings("sasrec", cfg)
