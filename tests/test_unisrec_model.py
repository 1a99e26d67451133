"""UniSRec (the model; tests/test_unisrec.py is the UniSRec file format): the adaptor, the losses against hand
computation, the word-drop view, freezing after pre-training, and pretrain -> finetune / transfer through the CLI."""

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from _cli import run

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.io import feature_file
from mmrec_cli.models import unisrec as U
from mmrec_cli.training.loop import TrainConfig

N_ITEMS, DIM = 24, 10


def tiny(num_users=14, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.choice(N_ITEMS, size=int(rng.integers(4, 9)), replace=False).tolist() for _ in range(num_users)]
    return D.from_sequences(seqs, [f"i{i}" for i in range(N_ITEMS)], [f"u{u}" for u in range(num_users)])


def feats(aug=False):
    g = torch.Generator().manual_seed(0)
    f = {"text": torch.randn(N_ITEMS, DIM, generator=g)}
    if aug:
        f["text_aug"] = f["text"] + 0.5 * torch.randn(N_ITEMS, DIM, generator=g)
    return f


def cfg(**kw):
    return U.Config(**({"max_len": 10, "hidden": 8, "layers": 1, "heads": 2, "inner": 16, "experts": 3, "dropout": 0.0, "attn_dropout": 0.0, "adaptor_dropout": 0.0} | kw))


def model(c=None, f=None, seed=0):
    torch.manual_seed(seed)
    m = U.Model(c or cfg(), N_ITEMS, f or feats())
    with torch.no_grad():  # gates away from uniform, so that the test sees them
        m.adaptor.gate.normal_(0, 0.5)
        m.adaptor.bias.normal_(0, 0.1)
    return m


def batch(ds, c, stage="finetune", bs=6):
    return next(iter(U.train_batches(ds, c, TrainConfig(batch_size=bs, seed=1), 0, stage)))


def test_adaptor_is_the_gated_sum_of_whitened_experts():
    m = model().eval()
    x = torch.randn(5, DIM, generator=torch.Generator().manual_seed(3))
    a = m.adaptor
    g = torch.softmax(x @ a.gate, -1)
    want = sum(g[:, e : e + 1] * ((x - a.bias[e]) @ a.weight[e]) for e in range(a.weight.shape[0]))
    assert torch.allclose(a(x), want, atol=1e-6)
    fresh = U.MoEAdaptor(DIM, 8, 3, 0.0, True).eval()  # zero gates at the start: the mean of the experts
    torch.nn.init.normal_(fresh.weight)
    assert torch.allclose(fresh(x), sum((x @ fresh.weight[e]) for e in range(3)) / 3, atol=1e-5)


def test_fine_tuning_loss_against_hand_computation():
    ds, c = tiny(), cfg(temperature=0.2)
    m = model(c).eval()
    b = batch(ds, c)
    items = b["items"]
    table = m.adaptor(m.text)  # (N, H)
    x = table[(items - 1).clamp_min(0)] * (items > 0)[..., None] + m.pos_emb.weight[: items.shape[1]] + m.item_emb(items)
    x = m.norm(x)
    for block in m.layers:
        x = block(x)
    h = F.normalize(x, dim=-1)
    cand = F.normalize(table + m.item_emb.weight[1:], dim=-1)
    keep = b["targets"] >= 0
    want = F.cross_entropy(h[keep] @ cand.T / 0.2, b["targets"][keep])
    assert torch.allclose(m.loss(b), want, atol=1e-5)
    # evaluation scores the users' last positions against the same candidates
    u = m.users(b)
    lengths = b["lengths"]
    assert torch.allclose(u, h[torch.arange(len(lengths)), lengths - 1], atol=1e-5)
    assert torch.allclose(m.score_users(u, torch.arange(N_ITEMS)), u @ cand.T, atol=1e-5)


def test_pretraining_loss_against_hand_computation(monkeypatch):
    ds, c = tiny(), cfg(seq_seq_weight=0.7)
    m = model(c).eval()
    b = batch(ds, c, "pretrain", bs=12)
    b["target"][1] = b["target"][0]  # two examples with one target: neither is the other's negative
    monkeypatch.setattr(m, "augment", lambda items, lengths: (items, lengths, None, torch.arange(items.shape[1]).expand_as(items)))  # the second view = the first
    items, lengths, t = b["items"], b["lengths"], b["target"]
    table = m.adaptor(m.text)
    u = U.last(m.encode(items, table[(items - 1).clamp_min(0)] * (items > 0)[..., None], use_ids=False), lengths)
    pos = F.normalize(table[t], dim=-1)

    def nce(a, p):
        total = 0.0
        for j in range(len(t)):
            neg = [k for k in range(len(t)) if k == j or t[k] != t[j]]
            total += -(a[j] @ p[j] / c.temperature) + torch.logsumexp(torch.stack([a[j] @ p[k] / c.temperature for k in neg]), 0)
        return total / len(t)

    want = nce(u, pos) + 0.7 * nce(u, u)
    assert torch.allclose(m.pretrain_loss(b), want, atol=1e-4)


def test_second_view_drops_items_or_takes_the_word_dropped_text():
    items = torch.tensor([[5, 6, 7, 8], [3, 4, 0, 0]])
    lengths = (items > 0).sum(1)
    without = model(cfg(item_drop_prob=0.0, item_drop=0.5))  # no text_aug: item drop in every batch
    torch.manual_seed(0)
    out, n, swap, _ = without.augment(items, lengths)
    assert swap is None and (out[:, 0] == items[:, 0]).all() and ((out > 0).sum(1) == n).all()
    m = model(cfg(item_drop_prob=0.0, item_drop=0.5, seq_seq_weight=1.0), feats(aug=True))
    torch.manual_seed(0)
    out, n, swap, _ = m.augment(items, lengths)
    assert torch.equal(out, items) and swap.any() and not swap.all() and not swap[1, 2:].any()
    b = {"items": items, "lengths": lengths, "target": torch.tensor([1, 2])}
    torch.manual_seed(0)
    with_aug = m.pretrain_loss(b)
    m.text_aug = m.text.clone()  # the same text in both views: the loss of a view without swapped text
    torch.manual_seed(0)
    assert not torch.allclose(with_aug, m.pretrain_loss(b))


def test_a_pre_trained_transformer_is_frozen_unless_full():
    m = model()
    U.after_init(m)
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in m.named_parameters() if n.startswith(("pos_emb.", "layers."))}
    full = model(cfg(full=True))
    U.after_init(full)
    assert all(p.requires_grad for p in full.parameters())


def test_overfits_one_batch():
    ds, c = tiny(), cfg(temperature=0.1)
    m = model(c).train()
    b = batch(ds, c, bs=14)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    first = float(m.loss(b).detach())
    for _ in range(150):
        opt.zero_grad()
        m.loss(b).backward()
        opt.step()
    assert float(m.loss(b).detach()) < 0.2 * first and first > math.log(N_ITEMS) / 2


def test_pretrain_then_finetune_transfer_and_eval_from_the_command_line(tmp_path):
    ds = tiny()
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    f = {k: v.numpy() for k, v in feats(aug=True).items()}
    feature_file.save(str(tmp_path / "f.safetensors"), f, ds.item_ids, "test", {}, {}, {"text": {"source": "test"}})
    arch = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1", "--set", "model.experts=2"]
    p = lambda name: str(tmp_path / name)  # noqa: E731
    r = run("pretrain", "unisrec", p("ds.safetensors"), "--features", p("f.safetensors"), *arch, "--epochs", 2, "-o", p("pre.safetensors"))
    assert r.exit_code == 0, r.output
    r = run("finetune", "unisrec", p("ds.safetensors"), "--features", p("f.safetensors"), *arch, "--epochs", 2, "--init", p("pre.safetensors"), "-o", p("ft.safetensors"))
    assert r.exit_code == 0, r.output
    assert "unisrec: positions and transformer frozen" in r.stderr
    r = run("transfer", p("pre.safetensors"), p("ds.safetensors"), "--features", p("f.safetensors"), "--mode", "inductive", "--epochs", 0, "-o", p("zero.safetensors"))
    assert r.exit_code == 0, r.output
    r = run("eval", p("zero.safetensors"), p("ds.safetensors"), "--features", p("f.safetensors"), "--ks", 5)
    assert r.exit_code == 0, r.output
    assert 0 <= json.loads(r.stdout)["metrics"]["ndcg@5"] <= 1


def examples_of(batches, packed):
    """(user, history, target) of every example in `batches`, in a sorted list."""
    out = []
    for b in batches:
        for r in range(len(b["items"])):
            seq = b["items"][r, : b["lengths"][r]].tolist()
            if packed:
                out += [(int(b["user"][r]), tuple(seq[: t + 1]), int(b["targets"][r, t])) for t in range(len(seq))]
            else:
                out.append((int(b["user"][r]), tuple(seq), int(b["target"][r])))
    return sorted(out)


def test_packed_batches_hold_the_prefixes_examples_within_the_budget():
    ds = tiny(num_users=30)
    prefixes = examples_of(B.prefix_batches(ds, 10, 7, 1, 0), packed=False)
    for bucket in (0, 4):
        first = list(B.window_batches(ds, 10, 9, 1, 0, bucket, by_examples=True))
        assert examples_of(first, packed=True) == prefixes
        assert all(int((b["targets"] >= 0).sum()) <= 9 for b in first)
        again = list(B.window_batches(ds, 10, 9, 1, 0, bucket, by_examples=True))
        assert all(torch.equal(a["items"], b["items"]) for a, b in zip(first, again, strict=True))
    other_epoch = list(B.window_batches(ds, 10, 9, 1, 1, 4, by_examples=True))
    assert not all(torch.equal(a["items"], b["items"]) for a, b in zip(first, other_epoch))


def test_packed_pretraining_loss_is_the_prefixes_loss_without_a_users_own_negatives(monkeypatch):
    ds, c = tiny(), cfg(seq_seq_weight=0.7, packed=True)
    m = model(c).eval()
    b = batch(ds, c, "pretrain", bs=20)
    assert "targets" in b and int((b["targets"] >= 0).sum()) <= 20
    monkeypatch.setattr(m, "augment", lambda items, lengths: (items, lengths, None, torch.arange(items.shape[1]).expand_as(items)))
    table = m.adaptor(m.text)
    ex = examples_of([b], packed=True)  # the output at each position is its prefix's last output alone
    u = torch.stack([m.encode(torch.tensor([h]), table[torch.tensor(h) - 1][None], use_ids=False)[0, -1] for _, h, _ in ex])
    t = torch.tensor([tg for _, _, tg in ex])
    user = [us for us, _, _ in ex]
    pos = F.normalize(table[t], dim=-1)

    def nce(a, p):
        total = 0.0
        for j in range(len(t)):
            neg = [k for k in range(len(t)) if k == j or (t[k] != t[j] and user[k] != user[j])]
            total += -(a[j] @ p[j] / c.temperature) + torch.logsumexp(torch.stack([a[j] @ p[k] / c.temperature for k in neg]), 0)
        return total / len(t)

    assert torch.allclose(m.pretrain_loss(b), nce(u, pos) + 0.7 * nce(u, u), atol=1e-4)


def test_a_positions_view_is_its_prefix_with_the_same_items_dropped():
    m = model(cfg(item_drop_prob=1.0, item_drop=0.5))
    items = torch.tensor([[5, 6, 7, 8, 9, 10], [3, 4, 11, 0, 0, 0]])
    lengths = (items > 0).sum(1)
    torch.manual_seed(1)
    out, n, _, at = m.augment(items, lengths)
    for r in range(2):
        for t in range(int(lengths[r])):
            seen = set(items[r, : t + 1].tolist())
            kept = out[r, : at[r, t] + 1].tolist()
            assert set(kept) <= seen and (at[r, t] + 1 == n[r] or int(out[r, at[r, t] + 1]) not in seen)
    assert (n < lengths).any()  # something was dropped


def test_packed_pretraining_from_the_command_line(tmp_path):
    ds = tiny()
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    f = {k: v.numpy() for k, v in feats(aug=True).items()}
    feature_file.save(str(tmp_path / "f.safetensors"), f, ds.item_ids, "test", {}, {}, {"text": {"source": "test"}})
    arch = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1", "--set", "model.experts=2", "--set", "model.packed=true"]
    r = run("pretrain", "unisrec", str(tmp_path / "ds.safetensors"), "--features", str(tmp_path / "f.safetensors"), *arch, "--epochs", 2, "--batch-size", 16, "-o", str(tmp_path / "pre.safetensors"))
    assert r.exit_code == 0, r.output
    r = run("info", str(tmp_path / "pre.safetensors"))
    assert json.loads(r.stdout)["config"]["model"]["packed"] is True


def test_a_packed_batch_never_spans_two_length_runs():
    ds = tiny(num_users=60, seed=3)
    windows, users = B.train_windows(ds, 10)
    counts = np.array([len(w) - 1 for w in windows])
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(1 * 1_000_003 + 0)).numpy()
    run = 2 * 9 * len(counts) // int(counts.sum())  # windows in about 2 batches, as window_batches(by_examples=True) sizes its runs
    run_of = {int(w): r for r, s in enumerate(range(0, len(order), run)) for w in order[s : s + run]}
    index = {(int(users[i]), *w.tolist()): i for i, w in enumerate(windows)}
    for b in B.window_batches(ds, 10, 9, 1, 0, 2, by_examples=True):
        n = b["lengths"].tolist()
        rows = [index[(int(b["user"][r]), *(b["items"][r, : n[r]] - 1).tolist(), int(b["targets"][r, n[r] - 1]))] for r in range(len(n))]
        assert len({run_of[i] for i in rows}) == 1


def test_within_budget_keeps_the_order_and_the_budget():
    counts = np.array([3, 4, 2, 9, 12, 1, 1])
    cuts = B.within_budget(np.arange(7), counts, 9)
    assert [c.tolist() for c in cuts] == [[0, 1, 2], [3], [4], [5, 6]]
