import itertools
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.errors import MmrecError
from mmrec_cli.evaluation import recommend as R
from mmrec_cli.models import sasrec, score

runner = CliRunner()


class Recorder(torch.nn.Module):
    """A model whose scores are a fixed random table per history length; it records the batches."""

    def __init__(self, num_items: int, max_len: int = 50):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(10, num_items, generator=torch.Generator().manual_seed(0)))
        self.max_len = max_len
        self.seen = []

    def users(self, batch):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return self.table[batch["lengths"].clamp(max=9)] + batch["user"][:, None].float() * 0.01

    def score_users(self, users, items):
        return users[:, items]


def histories(rows):
    return [R.History(u, -1, np.array(h, dtype=np.int64)) for u, h in rows]


def test_chunked_batched_top_k_equals_full_ranking():
    torch.manual_seed(0)
    model = sasrec.Model(sasrec.Config(max_len=5, hidden=8, layers=1, heads=2, inner=16), 23)
    rows = histories([(f"u{i}", list(np.random.default_rng(i).choice(23, size=i % 6, replace=False))) for i in range(9)])
    for exclude in (False, True):
        cfg = R.RecommendConfig(top_k=7, exclude_history=exclude, batch_size=4, chunk=5)
        got = list(R.recommend(model, rows, 23, cfg))
        assert [g[0].user_id for g in got] == [f"u{i}" for i in range(9)]  # input order kept
        for row, items, scores in got:
            from mmrec_cli.data.batches import collate_eval

            with torch.no_grad():
                model.eval()
                full = score(model, collate_eval([row.items], [-1], 5), torch.arange(23))[0]
            if exclude:
                full[torch.from_numpy(row.items)] = -float("inf")
                assert not set(items) & set(row.items.tolist())
            v, i = full.topk(7)
            assert items == i.tolist()
            assert np.allclose(scores, v.tolist(), atol=1e-6)


def test_top_k_larger_than_catalogue_and_everything_excluded():
    model = Recorder(4)
    cfg = R.RecommendConfig(top_k=10, chunk=3, exclude_history=True)
    (_, items, _), (_, items2, _) = R.recommend(model, histories([("a", [0, 1]), ("b", [0, 1, 2, 3])]), 4, cfg)
    assert sorted(items) == [2, 3] and items2 == []


def test_known_users_get_their_index_unknown_ids_are_counted(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"user_id": "u1", "items": ["i3", "nope", 7]}\n\n{"user_id": "stranger", "items": []}\n{"items": ["i2"]}\n')
    stats = R.Stats()
    ids = [f"i{i}" for i in range(7)] + ["7", "i8", "i9"]  # a numeric id in the JSON matches "7"
    rows = list(R.read_histories(str(path), ids, ["u0", "u1"], stats))
    assert [(r.user_id, r.user, r.items.tolist()) for r in rows] == [("u1", 1, [3, 7]), ("stranger", -1, []), (None, -1, [2])]
    assert (stats.histories, stats.unknown_items, stats.with_unknown, stats.empty, stats.known_users) == (3, 1, 1, 1, 1)
    model = Recorder(10, max_len=2)
    list(R.recommend(model, rows, 10, R.RecommendConfig(top_k=2, window=1)))  # one batch, in input order
    assert model.seen[0]["user"].tolist() == [1, -1, -1]
    assert model.seen[0]["items"].tolist() == [[4, 8], [0, 0], [3, 0]]  # index + 1, right-padded, last max_len
    with pytest.raises(MmrecError, match=r"h.jsonl:1: unknown item id 'nope'"):
        list(R.read_histories(str(path), [f"i{i}" for i in range(10)], [], R.Stats(), strict=True))
    path.write_text('{"user_id": "u1", "items": "i3"}\n')
    with pytest.raises(MmrecError, match=r"h.jsonl:1: expected \"items\": a list"):
        list(R.read_histories(str(path), ["i3"], [], R.Stats()))


def test_streams_lazily():
    """An endless input is consumed one batch at a time: the first results come before the end."""
    model = Recorder(6)
    endless = (R.History(n, -1, np.array([n % 6])) for n in itertools.count())
    first = list(itertools.islice(R.recommend(model, endless, 6, R.RecommendConfig(top_k=3, batch_size=5, window=2)), 12))
    assert [f[0].user_id for f in first] == list(range(12)) and len(model.seen) == 4  # two windows of two batches


def test_regrouping_by_length_keeps_the_input_order_and_the_results():
    model = sasrec.Model(sasrec.Config(max_len=5, hidden=8, layers=1, heads=2, inner=16), 23)
    rows = histories([(f"u{i}", list(np.random.default_rng(i).choice(23, size=(7 * i) % 6, replace=False))) for i in range(20)])
    plain = list(R.recommend(model, rows, 23, R.RecommendConfig(top_k=5, batch_size=3, window=1)))
    grouped = list(R.recommend(model, rows, 23, R.RecommendConfig(top_k=5, batch_size=3, window=4)))
    assert [g[0].user_id for g in grouped] == [f"u{i}" for i in range(20)]
    assert [g[1] for g in grouped] == [p[1] for p in plain]


@pytest.fixture
def trained(tiny_dataset, tmp_path):
    ds_path, ds = tiny_dataset
    model = tmp_path / "m.safetensors"
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(model), "--epochs", "1", "--max-len", "6", "--set", "model.hidden=16", "--set", "model.inner=32"])
    assert r.exit_code == 0, r.output
    return model, ds_path, ds


def test_cli_stdin_to_stdout_and_file(trained, tmp_path):
    model, ds_path, ds = trained
    lines = '{"user_id": "u0", "items": ["i1", "i2"]}\n{"user_id": "x", "items": ["i5", "zz"]}\n'
    r = runner.invoke(app, ["recommend", str(model), str(ds_path), "--top-k", "4", "--exclude-history"], input=lines)
    assert r.exit_code == 0, r.output
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["user_id"] for o in out] == ["u0", "x"] and all(len(o["items"]) == 4 == len(o["scores"]) for o in out)
    assert not {"i1", "i2"} & set(out[0]["items"]) and "i5" not in out[1]["items"]
    assert out[0]["scores"] == sorted(out[0]["scores"], reverse=True)
    assert "skipped 1 unknown item ids in 1 histories" in r.stderr
    inp = tmp_path / "h.jsonl"
    inp.write_text(lines)
    r = runner.invoke(app, ["recommend", str(model), str(ds_path), "--top-k", "4", "--exclude-history", "-i", str(inp), "-o", str(tmp_path / "o.jsonl"), "--chunk", "3", "--batch-size", "1"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()] == out
    r = runner.invoke(app, ["recommend", str(model), str(ds_path), "-i", str(inp), "--strict", "-o", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 3 and "h.jsonl:2: unknown item id 'zz'" in r.stderr
    assert not (tmp_path / "s.jsonl").exists()  # nothing half-written


def test_rounded_scores_are_pythons_round_bit_for_bit():
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.integers(-9, 13, 200_000)
    x = (rng.standard_normal(200_000) * magnitudes).astype(np.float32)  # scores are float32
    ties = np.array([0.0000005, 1.0000005, 2.5e-6, -2.5e-6, 0.1234565, 3.5e-7, 1e-7, -1e-7, 0.0, -0.0,
                     4503599627.3705, 1e30, 3.4e38, -3.4e38], dtype=np.float32)
    x = np.concatenate([x, ties, (np.arange(-2000, 2000) + 0.5).astype(np.float32) * 1e-6])
    want = [round(float(v), 6) for v in x]
    got = R.rounded(x, 6).tolist()
    assert [repr(v) for v in got] == [repr(v) for v in want]  # repr: -0.0 and 0.0 apart, the JSON's text
    near_ties = (np.arange(-2000, 2000) + 0.5) / 1e6  # doubles: here v * 1e6 is inexact, and rint alone is wrong half the time
    assert [repr(v) for v in R.rounded(near_ties, 6).tolist()] == [repr(round(float(v), 6)) for v in near_ties]
    special = np.array([np.inf, -np.inf, np.nan], dtype=np.float32)
    assert [repr(v) for v in R.rounded(special, 6).tolist()] == ["inf", "-inf", "nan"]


def test_read_histories_takes_numbers_as_ids_and_refuses_other_values(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"items": ["a", 7, 2.5]}\n{"items": ["a", true]}\n')
    stats = R.Stats()
    rows = R.read_histories(str(path), ["a", "7", "2.5"], [], stats)
    assert next(rows).items.tolist() == [0, 1, 2]
    with pytest.raises(MmrecError, match="h.jsonl:2: item id True is not a string or number"):
        next(rows)


def test_json_line_is_json_dumps_of_the_record_byte_for_byte():
    ids = ["i0", 'q"uote\\back', "ünï", "tab\there", "12", ""]
    encoded = R.encoded_ids(ids)
    cases = [("u1", [0, 1, 2], [3.314959, -0.0, 1e-07]), (None, [], []), (7, [5, 4, 3], [1e+16, 2.5, -3.0]),
             ({"a": [1, "b"]}, [0], [float("nan")]), (2.5, [1, 0], [float("inf"), float("-inf")])]
    for user_id, items, scores in cases:
        want = json.dumps({"user_id": user_id, "items": [ids[i] for i in items], "scores": scores}) + "\n"
        assert R.json_line(R.History(user_id, -1, np.array(items)), items, scores, encoded) == want
