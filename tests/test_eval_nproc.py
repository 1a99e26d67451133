"""mmrec eval --nproc N: the users split over N processes, with the metrics, --slice and --rankings of one process."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from _cli import error_line, run
from conftest import tiny_sequences

from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.evaluation.ranking import spans
from mmrec_cli.io import feature_file as FE

USERS, ITEMS = 40, 30
BATCH = 7  # 40 users: 5 whole batches and one of 5, split 3 + 3 batches
TINY = ["--epochs", 1, "--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1"]


@pytest.fixture(scope="module")
def sasrec(tmp_path_factory):
    """(model, dataset) paths: a 40-user leave-one-out dataset with histories of 2 to 6 items and a SASRec trained on it."""
    d = tmp_path_factory.mktemp("nproc")
    seqs = tiny_sequences(num_users=USERS, num_items=ITEMS)
    D.save(D.from_sequences(seqs, [f"i{i}" for i in range(ITEMS)], [f"u{u}" for u in range(USERS)]), str(d / "ds.safetensors"), {"command": "test"}, {}, {})
    r = run("finetune", "sasrec", d / "ds.safetensors", "-o", d / "m.safetensors", *TINY)
    assert r.exit_code == 0, r.output
    return d / "m.safetensors", d / "ds.safetensors"


def evaluate(tmp_path, name: str, *args) -> tuple[dict, bytes]:
    """(result JSON, --rankings bytes) of one `mmrec eval` run."""
    out, ranks = tmp_path / f"{name}.json", tmp_path / f"{name}.jsonl"
    r = run("eval", *args, "-o", out, "--rankings", ranks)
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), ranks.read_bytes()


def test_spans_start_on_batch_boundaries():
    assert spans(USERS, BATCH, 2) == [(0, 21), (21, 40)]
    assert spans(USERS, BATCH, 4) == [(0, 7), (7, 21), (21, 28), (28, 40)]
    assert spans(5, 512, 2) == [(0, 5)]  # one batch: one process
    assert spans(0, 512, 2) == [(0, 0)]


@pytest.mark.parametrize("split", ["valid", "test"])
def test_two_processes_give_what_one_gives(sasrec, tmp_path, split):
    common = [*sasrec, "--split", split, "--batch-size", BATCH, "--slice", "--top-k", 10]
    one, one_ranks = evaluate(tmp_path, "one", *common)
    two, two_ranks = evaluate(tmp_path, "two", *common, "--nproc", 2)
    assert two["metrics"] == one["metrics"] and two["metrics"]["users"] == USERS
    assert two["slices"] == one["slices"]
    assert two_ranks == one_ranks and len(one_ranks.splitlines()) == USERS
    assert two["command"]["params"]["nproc"] == 2


def test_a_multimodal_graph_model_with_masked_histories(tmp_path):
    """AlignRec under the ratio split: features, a user table, several targets per user and train items masked."""
    seqs = tiny_sequences(num_users=USERS, num_items=ITEMS)
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(ITEMS)], [f"u{u}" for u in range(USERS)], protocol="ratio", seed=1)
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    rng = np.random.default_rng(0)
    feats = {"text": rng.standard_normal((ITEMS, 12)).astype(np.float32), "image": rng.standard_normal((ITEMS, 10)).astype(np.float32)}
    FE.save(str(tmp_path / "f.safetensors"), feats, ds.item_ids, "test", {}, {}, {})
    common = ["--features", tmp_path / "f.safetensors"]
    r = run("finetune", "alignrec", tmp_path / "ds.safetensors", *common, "--epochs", 1, "--set", "model.content=raw", "--set", "model.embedding=8", "-o", tmp_path / "m.safetensors")
    assert r.exit_code == 0, r.output
    args = [tmp_path / "m.safetensors", tmp_path / "ds.safetensors", *common, "--split", "test", "--batch-size", 4]
    one, one_ranks = evaluate(tmp_path, "one", *args)
    two, two_ranks = evaluate(tmp_path, "two", *args, "--nproc", 2)
    assert one["masked"] == "train" and two["metrics"] == one["metrics"] and two_ranks == one_ranks


@pytest.mark.parametrize("extra, message", [
    (["--nproc", 0], "error: --nproc: 0 is out of range; use 1 or more"),
    (["--nproc", 2, "--compare"], "error: --nproc applies to model evaluation only, not to --compare"),
    (["--nproc", 2, "--probe"], "error: --nproc applies to model evaluation only, not to --probe"),
])
def test_refused(sasrec, extra, message):
    r = run("eval", *sasrec, *extra)
    assert r.exit_code == 2 and error_line(r) == message


def refuse_to_load(*args):
    """An --nproc process whose loading fails."""
    raise MmrecError("cannot read the model", 4)


def die_loading(*args):
    """An --nproc process killed as the out-of-memory killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("load, code, message", [
    (refuse_to_load, 4, "error: evaluation process 2 of 2 failed: cannot read the model"),
    (die_loading, 1, "error: evaluation process 2 of 2 was killed by SIGKILL (out of memory?) before returning its users; nothing was written"),
])
def test_a_failing_process_fails_the_command_and_writes_nothing(sasrec, tmp_path, monkeypatch, load, code, message):
    import mmrec_cli.cli.eval as eval_cli

    monkeypatch.setattr(eval_cli, "_load_for_worker", load)  # pickled by name: the spawned process runs it
    out, ranks = tmp_path / "r.json", tmp_path / "r.jsonl"
    r = run("eval", *sasrec, "--batch-size", BATCH, "--nproc", 2, "-o", out, "--rankings", ranks)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code and lines[-1] == message and "Traceback" not in r.output, r.output
    assert [line for line in lines if "error" in line] == [message]
    assert not out.exists() and not ranks.exists() and list(tmp_path.iterdir()) == []
