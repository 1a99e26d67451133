"""UniSRec (the model; tests/test_unisrec.py is the UniSRec file format): the adaptor, the losses against hand
computation, the word-drop view, freezing after pre-training, and pretrain -> finetune / transfer through the CLI."""

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from _cli import run

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
    monkeypatch.setattr(m, "augment", lambda items, lengths: (items, lengths, None))  # the second view = the first
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
    out, n, swap = without.augment(items, lengths)
    assert swap is None and (out[:, 0] == items[:, 0]).all() and ((out > 0).sum(1) == n).all()
    m = model(cfg(item_drop_prob=0.0, item_drop=0.5, seq_seq_weight=1.0), feats(aug=True))
    torch.manual_seed(0)
    out, n, swap = m.augment(items, lengths)
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
