"""mmrec export: a dataset in RecBole's atomic files or a plain CSV, with mmrec's split."""

from __future__ import annotations

from pathlib import Path

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
    assert r.exit_code == 2 and r.stderr.strip() == "error: --format parquet: choose one of recbole, csv"
