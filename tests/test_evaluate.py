import math

import numpy as np
import pytest
import torch

from mmrec_cli.data import dataset as D
from mmrec_cli.data.batches import collate_eval
from mmrec_cli.evaluation.ranking import EvalConfig, evaluate, mask_name, metrics, rank_batch, user_metrics


class Fixed(torch.nn.Module):
    """Scores from a fixed (users x items) table, looked up by batch['user']."""

    max_len = 10

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def users(self, batch):
        return self.table[batch["user"]]

    def score_users(self, users, items):
        return users[:, items]


def test_user_metrics_by_hand():
    m = user_metrics([2], 5)
    assert m == {"recall": 1.0, "hit": 1.0, "ndcg": pytest.approx(1 / math.log2(4)), "mrr": pytest.approx(1 / 3)}
    assert user_metrics([7], 5) == {"recall": 0.0, "hit": 0.0, "ndcg": 0.0, "mrr": 0.0}
    m = user_metrics([0, 3, 9], 5)  # two of three targets in the top 5
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["recall"] == pytest.approx(2 / 3) and m["ndcg"] == pytest.approx((1 + 1 / math.log2(5)) / idcg)
    assert m["hit"] == 1.0  # hit@k: any target in the top k, where recall counts the share of them


def test_ranks_are_exact_across_chunks_and_pessimistic_on_ties():
    table = [[0.1, 0.9, 0.5, 0.5, 0.3], [1, 1, 1, 1, 1]]
    model = Fixed(table)
    batch = {"user": torch.tensor([0, 1])}
    targets = [np.array([2]), np.array([4])]
    for chunk in (1, 2, 5):
        ranks, _ = rank_batch(model, batch, targets, 5, chunk)
        assert ranks == [[2], [4]]  # user 0: 0.9 and the tied 0.5 are above; user 1: all ties -> last


def test_a_target_is_never_above_itself():
    """A model's score of the target can differ in the last bit between the call for the targets and
    the call for a chunk (matmuls of two shapes): the rank must not move with it."""

    class Jitter(Fixed):
        def score_users(self, users, items):  # the call for the (one) target scores a hair higher
            s = super().score_users(users, items)
            return s + 1e-7 if len(items) == 1 else s

    batch = {"user": torch.tensor([0])}
    for chunk in (2, 5):
        ranks, _ = rank_batch(Jitter([[0.1, 0.9, 0.5, 0.7, 0.3]]), batch, [np.array([2])], 5, chunk)
        assert ranks == [[2]]  # 0.9 and 0.7 above, not the target itself


def test_history_masking_keeps_the_target():
    model = Fixed([[0.9, 0.8, 0.7, 0.1]])
    batch = {"user": torch.tensor([0])}
    ranks, _ = rank_batch(model, batch, [np.array([2])], 4, 2, masks=[np.array([0, 2])])
    assert ranks == [[1]]  # item 0 is masked, item 2 (target, also in history) stays


def test_topk_across_chunks():
    model = Fixed([[0.1, 0.9, 0.5, 0.7, 0.3]])
    _, (idx, val) = rank_batch(model, {"user": torch.tensor([0])}, [np.array([0])], 5, 2, topk=3)
    assert idx.tolist() == [[1, 3, 2]] and val[0].tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_topk_wider_than_a_chunk():
    """`eval --rankings --top-k 20 --chunk 8` crashed: the merge asked for k columns of fewer."""
    model = Fixed([[0.1, 0.9, 0.5, 0.7, 0.3]])
    _, (idx, val) = rank_batch(model, {"user": torch.tensor([0])}, [np.array([0])], 5, 2, topk=5)
    assert idx.tolist() == [[1, 3, 2, 4, 0]]


def test_each_batch_of_users_is_encoded_once():
    """users() runs once per batch of users, whatever the number of item chunks."""
    calls = []

    class Counting(Fixed):
        def users(self, batch):
            calls.append(len(batch["user"]))
            return super().users(batch)

    ds = D.from_sequences([[0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0]], list("abcd"), ["u", "v", "w"])
    evaluate(Counting([[0, 0, 3, 1], [4, 3, 2, 1], [1, 2, 3, 4]]), ds, EvalConfig(split="valid", chunk=1, batch_size=2))
    assert calls == [2, 1]


def test_evaluate_on_a_dataset():
    ds = D.from_sequences([[0, 1, 2, 3], [3, 2, 1, 0]], list("abcd"), ["u", "v"])
    # user 0: valid target 2, test 3; user 1: valid target 1, test 0
    model = Fixed([[0, 0, 3, 1], [4, 3, 2, 1]])
    m, recs = evaluate(model, ds, EvalConfig(split="valid", ks=(1, 2)))
    assert [r["ranks"] for r in recs] == [[0], [1]]
    assert m["recall@1"] == 0.5 and m["recall@2"] == 1.0 and m["users"] == 2
    m, _ = evaluate(model, ds, EvalConfig(split="test", ks=(1,)))
    assert m["recall@1"] == 0.5  # user 0: target 3 is below item 2; user 1: target 0 is first
    m, _ = evaluate(model, ds, EvalConfig(split="test", ks=(1,), mask_history=True, mask_valid=True))
    assert m["recall@1"] == 1.0  # with item 2 (user 0's valid item) masked, user 0's target is first too


def test_test_ranking_masks_train_items_only_by_default():
    """MMRec's protocol (AlignRec): the train items are removed from the test ranking, the valid items are not.
    Masking the valid items too made test figures higher than the paper's protocol gives."""
    ds = D.from_sequences([[0, 1, 2, 3], [3, 2, 1, 0]], list("abcd"), ["u", "v"])
    model = Fixed([[0, 0, 3, 1], [4, 3, 2, 1]])  # user 0: train 0, 1; valid 2 (scored highest); test 3
    m, recs = evaluate(model, ds, EvalConfig(split="test", ks=(1,), mask_history=True))
    assert [r["ranks"] for r in recs] == [[1], [0]]  # user 0's valid item 2 still ranks above its target
    assert mask_name(EvalConfig(split="test", mask_history=True)) == "train"


def test_metrics_average_over_users():
    m = metrics([{"ranks": [0]}, {"ranks": [10]}], ks=(5,))
    assert m == {"recall@5": 0.5, "hit@5": 0.5, "ndcg@5": 0.5, "mrr@5": 0.5, "users": 2}


def test_a_history_is_cut_to_at_least_one_item():
    """max_len 0 meant "everything" in one place and crashed in another: it is refused."""
    with pytest.raises(ValueError, match="max_len must be at least 1"):
        collate_eval([np.array([1, 2, 3])], [0], 0)
    assert collate_eval([np.array([1, 2, 3])], [0], 2)["items"].tolist() == [[3, 4]]


def test_a_cutoff_as_large_as_the_catalogue_is_flagged(tiny_dataset, tmp_path):
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    path, _ = tiny_dataset
    run = CliRunner()
    model = str(tmp_path / "m.safetensors")
    assert run.invoke(app, ["finetune", "sasrec", str(path), "-o", model, "--epochs", "1", "--set", "model.hidden=8", "--set", "model.inner=8"]).exit_code == 0
    r = run.invoke(app, ["eval", model, str(path), "--ks", "5,20,50", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: --ks 20 is not below the catalogue's 20 items: recall@20 is 1 whatever the model",
                     "note: --ks 50 is not below the catalogue's 20 items: recall@50 is 1 whatever the model"]


def test_commands_say_which_device_they_run_on(tiny_dataset, tmp_path):
    import torch
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    path, _ = tiny_dataset
    run = CliRunner()
    model = str(tmp_path / "m.safetensors")
    n = torch.get_num_threads()
    expected = f"device: cpu ({n} thread{'s' if n != 1 else ''})"
    r = run.invoke(app, ["finetune", "sasrec", str(path), "-o", model, "--epochs", "1", "--device", "cpu", "--set", "model.hidden=8", "--set", "model.inner=8"])
    assert r.exit_code == 0 and expected in r.stderr.splitlines(), r.output
    r = run.invoke(app, ["eval", model, str(path), "--device", "cpu", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0 and expected in r.stderr.splitlines(), r.output


def test_the_device_line_counts_threads_in_words():
    from mmrec_cli.training.distributed import describe

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe("cpu") == "cpu (1 thread)"
        torch.set_num_threads(2)
        assert describe("cpu") == "cpu (2 threads)"
    finally:
        torch.set_num_threads(before)


def test_counts_stay_exact_past_float32_integers():
    """Ranks are counted by summing 1.0s: a float32 sum stops counting at 2**24, so a chunk that wide sums in float64."""
    from mmrec_cli.evaluation.ranking import _count

    ones = torch.ones(1, 2**24 + 3)
    assert _count(ones).tolist() == [2**24 + 3]
    assert _count(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])).tolist() == [2, 0]
