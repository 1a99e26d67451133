"""--split time: one global moment splits train from valid, another valid from test (a temporal split)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data import dataset as D
from mmrec_cli.data.batches import eval_rows

cli = CliRunner()
# 20 interactions at times 1..20: the cutoffs are the times of the 16th and 18th (0-based 16 and 18) -> 17 and 19
CSV = "user_id,item_id,timestamp\n" + "".join(
    f"{u},{i},{t}\n"
    for u, i, t in [
        ("a", "i1", 1), ("a", "i2", 2), ("a", "i3", 3), ("a", "i4", 17), ("a", "i5", 20),
        ("b", "i2", 4), ("b", "i3", 5), ("b", "i1", 6), ("b", "i4", 18),
        ("c", "i5", 7), ("c", "i1", 8), ("c", "i2", 9), ("c", "i3", 10), ("c", "i4", 11),
        ("d", "i1", 12), ("d", "i2", 13), ("d", "i3", 14), ("d", "i4", 15), ("d", "i5", 16),
        ("e", "i3", 19),
    ]
)


def test_cutoffs_and_labels_by_hand():
    times = np.arange(1, 21, dtype=np.float64)
    assert D.time_cutoffs(times) == (17.0, 19.0)
    labels = D.time_labels([np.array([1, 2, 3, 17, 20.0]), np.array([19.0, 20.0]), np.array([18.0])], (17.0, 19.0))
    assert labels.tolist() == [D.TRAIN, D.TRAIN, D.TRAIN, D.VALID, D.TEST, D.HISTORY, D.TEST, D.HISTORY]


def test_prepare_time_split(tmp_path):
    (tmp_path / "c.csv").write_text(CSV)
    r = cli.invoke(app, ["prepare", str(tmp_path / "c.csv"), "--split", "time", "-o", str(tmp_path / "ds.safetensors"), "--drop-short"])
    assert r.exit_code == 0, r.output
    assert "(time split)" in r.stderr
    ds = D.load(str(tmp_path / "ds.safetensors"))
    assert ds.protocol == "time" and ds.user_ids == ["a", "b", "c", "d"]  # e has one interaction: dropped (--drop-short)
    # the cutoffs come from the 19 kept interactions (times 1..18 and 20): the 15th and 17th (0-based) are 16 and 18
    by_user = {uid: ds.labels(u).tolist() for u, uid in enumerate(ds.user_ids)}
    assert by_user == {"a": [0, 0, 0, 1, 2], "b": [0, 0, 0, 2], "c": [0, 0, 0, 0, 0], "d": [0, 0, 0, 0, 1]}
    hist, targets, users = eval_rows(ds, "test")
    assert [ds.user_ids[u] for u in users] == ["a", "b"] and [ds.item_ids[i] for i in hist[0]] == ["i1", "i2", "i3", "i4"]


def test_time_split_needs_timestamps(tmp_path):
    (tmp_path / "s.tsv").write_text("u1\ta b c\n")
    r = cli.invoke(app, ["prepare", str(tmp_path / "s.tsv"), "--format", "sequences", "--split", "time", "-o", str(tmp_path / "ds.safetensors")])
    assert r.exit_code == 3
    assert r.stderr.strip() == f"error: {tmp_path / 's.tsv'}: --split time needs timestamps, and the file has none; give its time column (--time-col), or use --split loo"


@pytest.mark.parametrize("split", ["loo", "ratio"])
def test_the_other_splits_are_unchanged_by_carrying_times(tmp_path, split):
    (tmp_path / "c.csv").write_text(CSV)
    r = cli.invoke(app, ["prepare", str(tmp_path / "c.csv"), "--split", split, "--drop-short", "-o", str(tmp_path / "ds.safetensors")])
    assert r.exit_code == 0, r.output
    ds = D.load(str(tmp_path / "ds.safetensors"))
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["i1", "i2", "i3", "i4", "i5"]


def test_a_model_trains_and_is_evaluated_on_a_time_split(tmp_path):
    (tmp_path / "c.csv").write_text(CSV)
    ds, model = str(tmp_path / "ds.safetensors"), str(tmp_path / "m.safetensors")
    assert cli.invoke(app, ["prepare", str(tmp_path / "c.csv"), "--split", "time", "-o", ds, "--drop-short"]).exit_code == 0
    r = cli.invoke(app, ["finetune", "sasrec", ds, "-o", model, "--epochs", "2", "--set", "model.hidden=8", "--set", "model.inner=8", "--set", "model.layers=1"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["eval", model, ds, "--split", "test", "-o", str(tmp_path / "t.json")])
    assert r.exit_code == 0, r.output
    import json

    result = json.loads((tmp_path / "t.json").read_text())
    assert result["protocol"] == "time" and result["metrics"]["users"] == 2
