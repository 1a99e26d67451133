"""Training on a share of the users while every user is evaluated (learning curves, low-data transfer)."""

import numpy as np
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D


def tiny() -> D.Dataset:
    seqs = [[0, 1, 2, 3], [4, 5, 6], [1, 3, 5, 7, 9], [2, 4, 6, 8]]
    return D.from_sequences(seqs, [f"i{i}" for i in range(10)], ["a", "b", "c", "d"])


def test_half_the_users_train_and_all_are_evaluated_alike():
    ds = tiny()
    sub, kept = D.subsample_users(ds, 0.5, seed=3)
    assert kept == 2
    trained = sorted({int(u) for u in B.train_windows(sub, 10)[1]})
    assert len(trained) == 2
    # by hand: a kept user's train items stay TRAIN; the others' become HISTORY; valid and test labels do not move
    for u in range(4):
        lab, was = sub.labels(u), ds.labels(u)
        want = np.where(was == D.TRAIN, D.TRAIN if u in trained else D.HISTORY, was)
        assert np.array_equal(lab, want)
    for split in ("valid", "test"):
        h0, t0, u0 = B.eval_rows(ds, split)
        h1, t1, u1 = B.eval_rows(sub, split)
        assert u0 == u1 and all(np.array_equal(a, b) for a, b in zip(h0, h1)) and all(np.array_equal(a, b) for a, b in zip(t0, t1))


def test_the_choice_is_fixed_by_the_seed():
    ds = tiny()
    a, _ = D.subsample_users(ds, 0.5, seed=1)
    b, _ = D.subsample_users(ds, 0.5, seed=1)
    assert np.array_equal(a.split, b.split)
    assert any(not np.array_equal(a.split, D.subsample_users(ds, 0.5, seed=s)[0].split) for s in range(2, 6))
    full, kept = D.subsample_users(ds, 1.0, seed=1)
    assert kept == 4 and np.array_equal(full.split, ds.split)


def test_cli_writes_the_subsampled_dataset(tmp_path):
    ds = tiny()
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    r = CliRunner().invoke(app, ["subsample", str(tmp_path / "ds.safetensors"), "--keep-users", "0.25", "--seed", "7", "-o", str(tmp_path / "sub.safetensors")])
    assert r.exit_code == 0, r.output
    assert "1 of 4 users trained on" in r.output and "all 4 evaluated" in r.output
    sub = D.load(str(tmp_path / "sub.safetensors"))
    assert np.array_equal(sub.split, D.subsample_users(ds, 0.25, 7)[0].split)
