"""mmrec eval --rankings FILE --rankings-format trec: a TREC run file and the split's qrels, for trec_eval and ranx."""

from __future__ import annotations

import json

import pytest
from _cli import error_line, run
from conftest import tiny_sequences

from mmrec_cli.data import dataset as D

TINY = ["--epochs", 1, "--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 12-user, 20-item leave-one-out dataset and a SASRec trained on it for one epoch."""
    d = tmp_path_factory.mktemp("trec")
    seqs = tiny_sequences()
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(20)], [f"u{u}" for u in range(len(seqs))])
    D.save(ds, str(d / "ds.safetensors"), {"command": "test"}, {}, {})
    r = run("finetune", "sasrec", d / "ds.safetensors", "-o", d / "m.safetensors", *TINY)
    assert r.exit_code == 0, r.output
    return d, d / "m.safetensors", d / "ds.safetensors", D.load(str(d / "ds.safetensors"))


def valid_targets(ds) -> dict[str, str]:
    return {ds.user_ids[u]: ds.item_ids[int(ds.sequence(u)[ds.labels(u) == D.VALID][0])] for u in range(ds.num_users)}


def test_trec_run_and_qrels_match_the_jsonl_rankings(trained, tmp_path):
    _, model, data, ds = trained
    r = run("eval", model, data, "-o", tmp_path / "j.json", "--rankings", tmp_path / "r.jsonl", "--top-k", 5)
    assert r.exit_code == 0, r.output
    r = run("eval", model, data, "-o", tmp_path / "t.json", "--rankings", tmp_path / "r.trec", "--rankings-format", "trec", "--top-k", 5)
    assert r.exit_code == 0, r.output
    jsonl = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    lines = [line.split(" ") for line in (tmp_path / "r.trec").read_text().splitlines()]
    assert len(jsonl) == ds.num_users == 12 and len(lines) == 5 * 12
    for k, rec in enumerate(jsonl):
        mine = lines[5 * k : 5 * k + 5]
        assert [f[0] for f in mine] == [rec["user_id"]] * 5
        assert [f[1] for f in mine] == ["Q0"] * 5 and [f[5] for f in mine] == ["mmrec"] * 5
        assert [f[2] for f in mine] == rec["top"]
        assert [int(f[3]) for f in mine] == [1, 2, 3, 4, 5]
        scores = [float(f[4]) for f in mine]
        assert scores == rec["scores"] and scores == sorted(scores, reverse=True)
    targets = valid_targets(ds)
    assert (tmp_path / "r.trec.qrels").read_text() == "".join(f"{u} 0 {targets[u]} 1\n" for u in ds.user_ids)
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["rankings"] is None and result["trec"] == {"run": str(tmp_path / "r.trec"), "qrels": str(tmp_path / "r.trec.qrels")}
    assert result["metrics"] == json.loads((tmp_path / "j.json").read_text())["metrics"]


def test_items_removed_from_the_ranking_are_not_in_the_run(trained, tmp_path):
    """--mask-history scores the user's history -inf: of the 20 items, the n - 2 before the valid target are gone."""
    _, model, data, ds = trained
    r = run("eval", model, data, "-o", tmp_path / "t.json", "--rankings", tmp_path / "r.trec", "--rankings-format", "trec", "--top-k", 20, "--mask-history")
    assert r.exit_code == 0, r.output
    per_user: dict[str, list[int]] = {}
    for line in (tmp_path / "r.trec").read_text().splitlines():
        user, _, item, rank, _, _ = line.split(" ")
        per_user.setdefault(user, []).append(int(rank))
        assert item not in {ds.item_ids[i] for i in ds.sequence(ds.user_ids.index(user))[:-2]}
    assert {u: len(ranks) for u, ranks in per_user.items()} == {ds.user_ids[u]: 20 - (len(ds.sequence(u)) - 2) for u in range(ds.num_users)}
    assert all(ranks == list(range(1, len(ranks) + 1)) for ranks in per_user.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rankings", "r.trec", "--rankings-format", "xml"], "error: --rankings-format xml: choose one of jsonl, trec"),
        (["--rankings-format", "trec"], "error: --rankings-format trec: give the run file with --rankings FILE"),
        (["--rankings", "-", "--rankings-format", "trec"], "error: --rankings - --rankings-format trec: the run file gets its qrels next to it (FILE.qrels); give a file path"),
    ],
)
def test_bad_rankings_format_options_are_usage_errors(trained, tmp_path, args, message):
    _, model, data, _ = trained
    r = run("eval", model, data, "-o", tmp_path / "t.json", *args)
    assert r.exit_code == 2 and error_line(r) == message
    assert list(tmp_path.iterdir()) == []


def test_the_qrels_file_must_not_be_another_output(trained, tmp_path):
    _, model, data, _ = trained
    r = run("eval", model, data, "-o", tmp_path / "r.trec.qrels", "--rankings", tmp_path / "r.trec", "--rankings-format", "trec")
    assert r.exit_code == 6 and error_line(r) == f"error: qrels {tmp_path / 'r.trec.qrels'} is also the -o file; give each output its own file"
    assert list(tmp_path.iterdir()) == []
