import json

import numpy as np
import pytest
import torch
from _cli import error_line, run
from conftest import tiny_sequences

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError, out_of_range
from mmrec_cli.io import artifacts
from mmrec_cli.models import bert4rec, score
from mmrec_cli.training.loop import TrainConfig

MASK = 21  # 20 items: the [mask] token is num_items + 1


def small(**kw):
    return bert4rec.Config(**{"max_len": 8, "hidden": 16, "layers": 2, "heads": 2, "inner": 32, **kw})


def quiet(**kw):
    return small(dropout=0.0, attn_dropout=0.0, **kw)


def dataset():
    return D.from_sequences(tiny_sequences(), [str(i) for i in range(20)], [str(u) for u in range(12)])


def batch(cfg=None, seed=0, epoch=0):
    return next(bert4rec.train_batches(dataset(), cfg or small(), TrainConfig(batch_size=64, seed=seed), epoch))


def test_shapes_and_scores_of_any_items():
    torch.manual_seed(0)
    b = batch()
    m = bert4rec.Model(small(), 20)
    assert m.item_emb.weight.shape == (22, 16)  # padding, 20 items, [mask]
    assert m.encode(b["items"]).shape == (*b["items"].shape, 16)
    assert m.users(b).shape == (len(b["items"]), 16)
    assert score(m, b, torch.tensor([3, 0, 19])).shape == (len(b["items"]), 3)


def test_golden_loss_on_a_seeded_batch():
    torch.manual_seed(0)
    b = batch(quiet(ft_ratio=0.0))  # Cloze batches only
    assert b["items"].shape == (49, 5) and int((b["targets"] >= 0).sum()) == 54
    m = bert4rec.Model(quiet(ft_ratio=0.0), 20)
    assert m.loss(b).item() == pytest.approx(2.9893243, abs=1e-5)


def test_masks_replace_items_at_the_targets_and_every_row_has_one():
    plain = next(B.prefix_batches(dataset(), 8, 64, 0, 0))
    b = batch()
    chosen = b["targets"] >= 0
    assert torch.equal(b["targets"][chosen], plain["items"][chosen] - 1)  # the 0-based item that was masked
    assert (b["items"][chosen] == MASK).all() and torch.equal(b["items"][~chosen], plain["items"][~chosen])
    assert chosen.any(1).all() and not (chosen & (plain["items"] == 0)).any()  # one at least, never on padding
    assert "target" not in b and torch.equal(b["lengths"], plain["lengths"])


def test_last_item_batches_mask_and_read_only_each_rows_last_item():
    rows = {"items": torch.tensor([[3, 0, 0], [3, 4, 0], [3, 4, 5]]), "lengths": torch.tensor([1, 2, 3])}
    b = bert4rec.mask_last(rows, MASK)
    assert b["items"].tolist() == [[MASK, 0, 0], [3, MASK, 0], [3, 4, MASK]]
    assert b["targets"].tolist() == [[2, -100, -100], [-100, 3, -100], [-100, -100, 4]]  # the 0-based last items
    recbole = bert4rec.mask_last(rows, MASK, recbole=True)  # RecBole never reads position 0
    assert torch.equal(recbole["items"], b["items"]) and recbole["targets"][0].tolist() == [-100] * 3


def test_ft_ratio_picks_whole_batches_of_last_item_masks_per_seed_and_epoch():
    ds, tc = dataset(), TrainConfig(batch_size=8, seed=3)
    kinds = []
    for epoch in range(4):
        for b in bert4rec.train_batches(ds, small(ft_ratio=0.5), tc, epoch):
            last = torch.arange(b["items"].shape[1]) == (b["lengths"] - 1)[:, None]
            kinds.append(bool(torch.equal(b["targets"] >= 0, last)))
    assert kinds == [  # the same draws on every run: (seed, epoch)
        bool(torch.equal(b["targets"] >= 0, torch.arange(b["items"].shape[1]) == (b["lengths"] - 1)[:, None]))
        for epoch in range(4)
        for b in bert4rec.train_batches(ds, small(ft_ratio=0.5), tc, epoch)
    ]
    assert 0 < sum(kinds) < len(kinds)  # both kinds of batch
    every = list(bert4rec.train_batches(ds, small(ft_ratio=1.0), tc, 0))
    assert all((b["targets"] >= 0).sum(1).eq(1).all() and (b["items"][b["targets"] >= 0] == MASK).all() for b in every)
    cloze = [b["targets"] for b in bert4rec.train_batches(ds, small(ft_ratio=0.0), tc, 0)]
    assert sum(int((t >= 0).sum()) for t in cloze) > sum(int((b["targets"] >= 0).sum()) for b in every)


def test_mask_ratio_bounds_draw_one_or_every_item():
    plain = next(B.prefix_batches(dataset(), 8, 64, 0, 0))
    none = bert4rec.mask_items(plain, MASK, 0.0, np.random.default_rng(0))
    assert ((none["targets"] >= 0).sum(1) == 1).all()  # the one forced mask per row
    every = bert4rec.mask_items(plain, MASK, 1.0, np.random.default_rng(0))
    assert torch.equal(every["targets"] >= 0, plain["items"] > 0)


def test_recbole_loss_masks_read_the_last_masks_of_a_row_never_position_0():
    rows = {"items": torch.tensor([[3, 0, 0, 0, 0], [3, 4, 5, 0, 0], [3, 4, 5, 6, 7]]), "lengths": torch.tensor([1, 3, 5])}
    every = bert4rec.mask_items(rows, MASK, 1.0, np.random.default_rng(0), recbole_cap=2)
    assert torch.equal(every["items"] == MASK, rows["items"] > 0)  # all masked in the input...
    assert (every["targets"] >= 0).tolist() == [  # ...the loss reads the last two of each row, never position 0
        [False] * 5,
        [False, True, True, False, False],
        [False, False, False, True, True],
    ]
    assert every["targets"][2, 3:].tolist() == [5, 6]  # the 0-based items
    none = bert4rec.mask_items(rows, MASK, 0.0, np.random.default_rng(0), recbole_cap=2)
    assert torch.equal(none["items"], rows["items"]) and not (none["targets"] >= 0).any()  # no forced mask


def test_a_batch_without_a_loss_position_gives_a_zero_loss_with_gradients():
    rows = {"items": torch.tensor([[3, 0], [4, 0]]), "lengths": torch.tensor([1, 1])}
    b = bert4rec.mask_items(rows, MASK, 1.0, np.random.default_rng(0), recbole_cap=2)  # position 0 only: nothing read
    m = bert4rec.Model(small(), 20)
    loss = m.loss(b)
    loss.backward()
    assert loss.item() == 0.0 and m.item_emb.weight.grad is not None


def test_train_batches_cap_recbole_loss_masks_at_mask_ratio_times_max_len():
    b = batch(small(loss_masks="recbole", mask_ratio=0.5, max_len=8))  # cap int(0.5 * 8) = 4
    read = b["targets"] >= 0
    assert int(read.sum(1).max()) <= 4 and not read[:, 0].any()
    assert read.sum() < (b["items"] == MASK).sum()  # some masked inputs are not read


def test_masks_depend_only_on_seed_and_epoch():
    torch.manual_seed(1)
    a = batch(epoch=0)
    torch.manual_seed(2)  # the global generator plays no part
    again = batch(epoch=0)
    assert torch.equal(a["items"], again["items"]) and torch.equal(a["targets"], again["targets"])
    assert not torch.equal(a["items"], batch(epoch=1)["items"]) and not torch.equal(a["items"], batch(seed=1)["items"])


def test_with_mask_appends_after_the_history_and_keeps_the_last_max_len_minus_one():
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    out, at = bert4rec.with_mask(items, torch.tensor([3, 4]), MASK, max_len=4)
    assert out.tolist() == [[1, 2, 3, MASK], [5, 6, 7, MASK]] and at.tolist() == [3, 3]
    out, at = bert4rec.with_mask(items, torch.tensor([3, 4]), MASK, max_len=5)
    assert out.tolist() == [[1, 2, 3, MASK, 0], [4, 5, 6, 7, MASK]] and at.tolist() == [3, 4]
    out, at = bert4rec.with_mask(torch.tensor([[0]]), torch.tensor([0]), MASK, max_len=4)  # no history: [mask] alone
    assert out.tolist() == [[MASK, 0]] and at.tolist() == [0]


def test_drop_oldest_evaluates_as_recbole_reconstructs_its_test_rows():
    """RecBole appends [mask] after the history in a row one column wider, then drops the first column."""
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    out, at = bert4rec.with_mask(items, torch.tensor([3, 4]), MASK, max_len=4, drop_oldest=True)
    assert out.tolist() == [[2, 3, MASK, 0], [5, 6, 7, MASK]] and at.tolist() == [2, 3]
    out, at = bert4rec.with_mask(items, torch.tensor([3, 4]), MASK, max_len=5, drop_oldest=True)
    assert out.tolist() == [[2, 3, MASK, 0, 0], [5, 6, 7, MASK, 0]] and at.tolist() == [2, 3]
    out, at = bert4rec.with_mask(torch.tensor([[0]]), torch.tensor([0]), MASK, max_len=4, drop_oldest=True)
    assert out.tolist() == [[MASK, 0]] and at.tolist() == [0]


def test_the_user_vector_is_the_output_at_the_appended_mask():
    torch.manual_seed(0)
    m = bert4rec.Model(small(max_len=4), 20).eval()
    long = B.collate_eval([np.array([0, 1, 2, 3, 4, 5])], [0], 4)  # the last 4 items reach the model: 3 are kept
    short = B.collate_eval([np.array([3, 4, 5]), np.array([9])], [0, 1], 4)
    with torch.no_grad():
        kept = m.encode(torch.tensor([[4, 5, 6, MASK]]))[0, 3]
        assert torch.allclose(m.users(long)[0], kept, atol=1e-6)
        users = m.users(short)
        assert torch.allclose(users[0], kept, atol=1e-6)  # a history of max_len - 1 items is kept whole
        assert torch.allclose(users[1], m.encode(torch.tensor([[10, MASK]]))[0, 1], atol=1e-6)  # nor does padding


def test_attention_sees_both_sides():
    torch.manual_seed(0)
    m = bert4rec.Model(quiet(), 20).eval()
    x = torch.tensor([[1, 2, 3, MASK]])
    y = torch.tensor([[1, 2, 9, MASK]])
    assert not torch.allclose(m.encode(x)[0, 0], m.encode(y)[0, 0], atol=1e-3)  # an earlier position sees a later item


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    m = bert4rec.Model(small(), 20)
    m.loss(batch()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_overfits_one_batch():
    """Rows of three items or more, no two inputs alike (a one-item prefix is [mask] alone for every user)."""
    plain = next(B.prefix_batches(dataset(), 8, 64, 0, 0))
    long = plain["lengths"] >= 3
    b = bert4rec.mask_items({k: v[long] for k, v in plain.items()}, MASK, 0.2, np.random.default_rng(0))
    assert len(set(map(tuple, b["items"].tolist()))) == len(b["items"]) == 25
    torch.manual_seed(0)
    m = bert4rec.Model(quiet(), 20)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = m.loss(b).item()
    for _ in range(150):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    assert first > 2.5 and loss.item() < 0.2


def test_without_the_output_bias_scores_are_dot_products():
    torch.manual_seed(0)
    m = bert4rec.Model(small(output_bias=False), 20).eval()
    assert m.out_bias is None and "out_bias" not in m.state_dict()
    u = torch.randn(2, 16)
    assert torch.allclose(m.score_users(u, torch.tensor([0, 5])), u @ m.item_emb.weight[[1, 6]].T)


def test_a_mask_ratio_out_of_range_is_refused():
    with pytest.raises(MmrecError, match=r"^config: model.mask_ratio: 1.5 is out of range; use a rate in \[0, 1\]$"):
        bert4rec.Model(small(mask_ratio=1.5), 20)
    with pytest.raises(MmrecError, match=r"^config: model.ft_ratio: -0.5 is out of range; use a rate in \[0, 1\]$"):
        bert4rec.Model(small(ft_ratio=-0.5), 20)


def test_cli_finetune_then_eval(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    model = tmp_path / "bert.safetensors"
    r = run("finetune", "bert4rec", ds_path, "-o", model, "--epochs", "2", "--batch-size", "16", "--max-len", "8",
            "--set", "model.hidden=16", "--set", "model.inner=32")
    assert r.exit_code == 0, r.output
    meta = artifacts.read_meta(model, "model")
    cfg = meta["config"]["model"]
    got = (cfg["max_len"], cfg["hidden"], cfg["layers"], cfg["mask_ratio"], cfg["act"], cfg["output_bias"])
    assert got == (8, 16, 2, 0.2, "gelu", True)
    out = tmp_path / "m.json"
    r = run("eval", model, ds_path, "--split", "test", "-o", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["split"] == "test" and res["metrics"]["users"] == 12 and 0 <= res["metrics"]["ndcg@10"] <= 1
    r = run("finetune", "bert4rec", ds_path, "-o", model, "--set", "model.mask_ratio=-0.1")
    assert r.exit_code == out_of_range("", 0, "").code  # a setting out of range, as every other one
    assert error_line(r) == "error: config: model.mask_ratio: -0.1 is out of range; use a rate in [0, 1]"
