"""mmrec export: a dataset in RecBole's atomic files or a plain CSV, with mmrec's split."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data import dataset as D

cli = CliRunner()


def tiny(path: Path, protocol: str = "loo") -> Path:
    ds = D.from_sequences([[0, 1, 2], [2, 0, 1, 3]], ["a", "b", "c", "d"], ["u1", "u2"], protocol=protocol, seed=1)
    D.save(ds, str(path), {"command": "test"}, {}, {})
    return path


def test_recbole_files_hold_every_interaction_in_order_with_position_timestamps(tmp_path):
    ds = tiny(tmp_path / "sci.safetensors")
    r = cli.invoke(app, ["export", str(ds), "--format", "recbole", "-o", str(tmp_path / "rb")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rb" / "sci" / "sci.inter").read_text() == (
        "user_id:token\titem_id:token\ttimestamp:float\n"
        "u1\ta\t0\nu1\tb\t1\nu1\tc\t2\n"
        "u2\tc\t0\nu2\ta\t1\nu2\tb\t2\nu2\td\t3\n"
    )
    config = (tmp_path / "rb" / "sci" / "sci.yaml").read_text()
    assert "dataset: sci\n" in config and "split: {LS: valid_and_test}" in config and "MAX_ITEM_LIST_LENGTH: 50" in config
    assert r.stderr.strip() == f"wrote {tmp_path / 'rb' / 'sci' / 'sci.inter'}: 2 users, 4 items, 7 interactions (recbole)"


def test_csv_export_reads_back_to_the_same_dataset(tmp_path):
    ds = tiny(tmp_path / "ds.safetensors")
    r = cli.invoke(app, ["export", str(ds), "--format", "csv", "-o", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[:4] == ["user_id,item_id,timestamp,split", "u1,a,0,train", "u1,b,1,valid", "u1,c,2,test"]
    (tmp_path / "x.csv").write_text(r.stdout)
    r = cli.invoke(app, ["prepare", str(tmp_path / "x.csv"), "-o", str(tmp_path / "back.safetensors")])
    assert r.exit_code == 0, r.output
    a, b = D.load(str(ds)), D.load(str(tmp_path / "back.safetensors"))
    assert a.fingerprint() == b.fingerprint() and a.user_ids == b.user_ids


def test_a_ratio_split_or_a_subsample_is_refused_for_recbole(tmp_path):
    ds = tiny(tmp_path / "r.safetensors", protocol="ratio")
    r = cli.invoke(app, ["export", str(ds), "-o", str(tmp_path / "rb")])
    assert r.exit_code == 3
    assert r.stderr.strip() == f"error: {ds}: RecBole's own splits cannot reproduce a 'ratio' split; export a leave-one-out dataset (`mmrec prepare --split loo`), or use --format csv, whose split column keeps it"
    assert not (tmp_path / "rb").exists()
    loo = tiny(tmp_path / "l.safetensors")
    r = cli.invoke(app, ["subsample", str(loo), "--keep-users", "0.5", "-o", str(tmp_path / "s.safetensors")])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["export", str(tmp_path / "s.safetensors"), "--format", "csv", "-o", str(tmp_path / "s.csv")])
    assert r.exit_code == 3 and "history only (a dataset from `mmrec subsample`)" in r.stderr and not (tmp_path / "s.csv").exists()


def test_an_unknown_format_is_a_usage_error(tmp_path):
    ds = tiny(tmp_path / "ds.safetensors")
    r = cli.invoke(app, ["export", str(ds), "--format", "parquet", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and r.stderr.strip() == "error: --format parquet: choose one of recbole, csv, unisrec"


UNISREC_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def test_unisrec_files_of_a_tiny_dataset(tmp_path):
    ds = tiny(tmp_path / "sci.safetensors")
    r = cli.invoke(app, ["export", str(ds), "--format", "unisrec", "-o", str(tmp_path / "us")])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "us" / "sci"
    assert sorted(p.name for p in folder.iterdir()) == ["sci.item2index", "sci.test.inter", "sci.train.inter", "sci.user2index", "sci.valid.inter"]
    # u1 = a b c (indices 0 1 2): no train row, valid b after a, test c after a b; u2 = c a b d (2 0 1 3)
    assert (folder / "sci.train.inter").read_text() == UNISREC_HEADER + "1\t2\t0\n"
    assert (folder / "sci.valid.inter").read_text() == UNISREC_HEADER + "0\t0\t1\n1\t2 0\t1\n"
    assert (folder / "sci.test.inter").read_text() == UNISREC_HEADER + "0\t0 1\t2\n1\t2 0 1\t3\n"
    assert (folder / "sci.user2index").read_text() == "u1\t0\nu2\t1\n"
    assert (folder / "sci.item2index").read_text() == "a\t0\nb\t1\nc\t2\nd\t3\n"
    assert r.stderr.strip() == f"wrote {folder / 'sci.*'}: 2 users, 4 items, 7 interactions (unisrec)"


def test_unisrec_rows_hold_the_last_max_len_items_newest_train_row_first(tmp_path):
    ds = D.from_sequences([[5, 4, 3, 2, 1, 0]], list("abcdef"), ["u"])
    D.save(ds, str(tmp_path / "d.safetensors"), {"command": "test"}, {}, {})
    r = cli.invoke(app, ["export", str(tmp_path / "d.safetensors"), "--format", "unisrec", "-o", str(tmp_path / "us"), "--name", "x", "--max-len", "2"])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "us" / "x"
    assert (folder / "x.train.inter").read_text() == UNISREC_HEADER + "0\t4 3\t2\n0\t5 4\t3\n0\t5\t4\n"
    assert (folder / "x.valid.inter").read_text() == UNISREC_HEADER + "0\t3 2\t1\n"
    assert (folder / "x.test.inter").read_text() == UNISREC_HEADER + "0\t2 1\t0\n"


def long_and_short_users(path: Path) -> Path:
    """Users of 120, 52, 51, 50, 4 and 3 interactions over 30 items, repeats included."""
    import numpy as np

    rng = np.random.default_rng(7)
    seqs = [rng.integers(0, 30, size=n).tolist() for n in (120, 52, 51, 50, 4, 3)]
    ds = D.from_sequences(seqs, [f"item{i}" for i in range(30)], [f"user{u}" for u in range(len(seqs))])
    D.save(ds, str(path), {"command": "test"}, {}, {})
    return path


@pytest.mark.parametrize("max_len", [None, "1", "7"])
def test_unisrec_export_reads_back_to_the_same_dataset(tmp_path, max_len):
    from _cli import run

    ds = long_and_short_users(tmp_path / "ds.safetensors")
    r = run("export", ds, "--format", "unisrec", "-o", tmp_path / "us", "--name", "long", *(["--max-len", max_len] if max_len else []))
    assert r.exit_code == 0, r.output
    window = int(max_len or 50)
    train = (tmp_path / "us" / "long" / "long.train.inter").read_text().splitlines()[1:]
    assert max(len(line.split("\t")[1].split()) for line in train) == window
    assert len(train) == sum(n - 3 for n in (120, 52, 51, 50, 4, 3))
    r = run("prepare", tmp_path / "us" / "long", "-o", tmp_path / "ds2.safetensors")
    assert r.exit_code == 0, r.output
    a, b = D.load(str(ds)), D.load(str(tmp_path / "ds2.safetensors"))
    assert (a.user_ids, a.item_ids, b.protocol) == (b.user_ids, b.item_ids, "loo")
    assert a.offsets.tolist() == b.offsets.tolist() and a.items.tolist() == b.items.tolist() and a.split.tolist() == b.split.tolist()
    assert len(a.sequence(0)) == 120 and b.sequence(0).tolist() == a.sequence(0).tolist()


def test_unisrec_export_of_a_ratio_split_is_refused(tmp_path):
    from _cli import error_line, run

    ds = tiny(tmp_path / "r.safetensors", protocol="ratio")
    r = run("export", ds, "--format", "unisrec", "-o", tmp_path / "us")
    assert r.exit_code == 3
    assert error_line(r) == (
        f"error: {ds}: UniSRec's files hold a leave-one-out split only, not a 'ratio' split; export a leave-one-out dataset "
        "(`mmrec prepare --split loo`), or use --format csv, whose split column keeps it"
    )
    assert not (tmp_path / "us").exists()


def test_unisrec_export_option_errors(tmp_path):
    from _cli import error_line, run

    ds = tiny(tmp_path / "ds.safetensors")
    r = run("export", ds, "--format", "unisrec", "-o", "-")
    assert r.exit_code == 2 and error_line(r) == "error: -o -: UniSRec's files are a folder; give a folder path"
    r = run("export", ds, "--format", "csv", "-o", tmp_path / "x.csv", "--max-len", 5)
    assert r.exit_code == 2 and error_line(r) == "error: --max-len is for --format recbole or unisrec; a CSV holds whole sequences"
    r = run("export", ds, "--format", "unisrec", "-o", tmp_path / "us", "--max-len", 0)
    assert r.exit_code == 2 and error_line(r) == "error: --max-len: 0 is out of range; use 1 or more"
    r = run("export", ds, "--format", "unisrec", "-o", tmp_path / "us", "--name", "a/b")
    assert r.exit_code == 2 and error_line(r) == "error: --name 'a/b': give a plain dataset name, e.g. --name scientific"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.safetensors"]
