"""MSM4SR: shapes, the losses against explicit loops (eq. 7, 9, 11, 12-13), gradients, overfitting,
the augmentations, and the CLI pretrain -> finetune --init -> eval path on a tiny synthetic dataset."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from mmrec_cli import models
from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import feature_file as FE
from mmrec_cli.models import msm4sr as M
from mmrec_cli.models import score
from mmrec_cli.training import loading

N_ITEMS, S, DIM = 20, 3, 12


def tiny_features(num_items: int = N_ITEMS, seed: int = 0, stacks: bool = True) -> dict:
    """Text as sentence stacks (some rows masked), image as one vector per item."""
    g = torch.Generator().manual_seed(seed)
    feats = {"text": torch.randn(num_items, DIM, generator=g), "image": torch.randn(num_items, DIM + 4, generator=g)}
    if stacks:
        mask = torch.ones(num_items, S, dtype=torch.uint8)
        mask[::2, 2] = 0  # every other item has two sentences
        mask[::3, 1:] = 0  # every third has one
        feats["text_stack"] = torch.randn(num_items, S, DIM, generator=g)
        feats["text_stack_mask"] = mask
    return feats


def quiet(**kw) -> M.Config:
    """No randomness: no dropout of any kind, no mixup (for comparing with hand-computed values)."""
    base = dict(hidden=8, heads=2, inner=16, layers=2, experts=3, pool_hidden=5, max_len=10, dropout=0.0, attn_dropout=0.0, adaptor_dropout=0.0, seq_dropout=0.0, mixup=False)
    return M.Config(**(base | kw))


def tiny_dataset(num_users: int, seed: int = 0, num_items: int = N_ITEMS) -> D.Dataset:
    from conftest import tiny_sequences

    seqs = tiny_sequences(num_users=num_users, num_items=num_items, seed=seed)
    return D.from_sequences(seqs, [f"i{i}" for i in range(num_items)], [f"u{u}" for u in range(len(seqs))])


def tiny_batch(seed: int = 0, num_items: int = N_ITEMS) -> dict:
    return next(B.train_batches(tiny_dataset(6, seed, num_items), 10, 64, 0, 0))


def model(cfg=None, feats=None, seed: int = 0) -> M.Model:
    torch.manual_seed(seed)
    return M.Model(cfg or quiet(), N_ITEMS, feats if feats is not None else tiny_features())


def f(a, b, tau):
    return math.exp(F.cosine_similarity(a, b, dim=0).item() / tau)


# ---- shapes --------------------------------------------------------------------------------


def test_shapes_and_stack_handling():
    net = model()
    batch = tiny_batch()
    Bn, L = batch["items"].shape
    z = net.item_repr("text", torch.arange(N_ITEMS))
    assert z.shape == (N_ITEMS, 8) and net.item_repr("image", torch.tensor([3, 4])).shape == (2, 8)
    assert net.text_stack.shape == (N_ITEMS, S, DIM) and net.image_stack.shape == (N_ITEMS, 1, DIM + 4)
    assert net.encode(torch.randn(Bn, L, 8)).shape == (Bn, L, 8)
    assert score(net, batch, torch.arange(7)).shape == (Bn, 7)
    assert net.pretrain_loss(batch).dim() == 0 and net.loss(batch).dim() == 0
    # feature tables are not part of the saved state
    assert not any("stack" in k for k in net.state_dict())


def test_attention_pooling_ignores_masked_rows_and_empty_items():
    enc = model().encoders["text"]
    x = torch.randn(3, S, DIM)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    e = enc.pool(x, mask)
    x2 = x.clone()
    x2[0, 2] = 1e3  # a masked row changes nothing
    assert torch.allclose(enc.pool(x2, mask), e)
    assert torch.allclose(e[1], x[1, 0])  # one row: weight 1
    assert torch.equal(e[2], torch.zeros(DIM))  # no row: zeros, not NaN
    # eq. 3 by hand for item 0
    a = ((x[0, :2] @ enc.w1.weight.T + enc.w1.bias) @ enc.w2.weight.T + enc.w2.bias).squeeze(-1)
    assert torch.allclose(e[0], (torch.softmax(a, 0)[:, None] * x[0, :2]).sum(0), atol=1e-6)


def test_moe_matches_eq_4_5():
    enc = model().encoders["image"]
    with torch.no_grad():
        enc.gate.weight.normal_()
    x = torch.randn(2, 1, DIM + 4)
    z = enc(x, torch.ones(2, 1, dtype=torch.bool))
    e = x[:, 0]
    W = enc.experts.weight.view(enc.O, enc.H, -1)  # (O, H, D)
    for n in range(2):
        g = torch.softmax(e[n] @ enc.gate.weight.T, 0)
        want = sum(g[k] * F.layer_norm(e[n] @ W[k].T, (enc.H,), enc.ln_weight[k], enc.ln_bias[k], eps=1e-12) for k in range(enc.O))
        assert torch.allclose(z[n], want, atol=1e-5)


# ---- losses against explicit loops -----------------------------------------------------------


def nip_by_loops(hat, til, z, tgt, tau, mask_same=True):
    P, total = len(hat), 0.0
    for j in range(P):
        num = f(hat[j], z[j], tau) + f(til[j], z[j], tau)
        den = sum(f(hat[j], z[k], tau) + f(til[j], z[k], tau) for k in range(P) if k == j or not (mask_same and tgt[k] == tgt[j]))
        total += -math.log(num / den)
    return total / P


def cmcl_by_loops(hat, til, tgt, tau, mask_same=True):
    P = len(hat)

    def ell(a, b, j):
        ok = [k for k in range(P) if k == j or not (mask_same and tgt[k] == tgt[j])]
        den = sum(f(a[j], b[k], tau) for k in ok) + sum(f(a[j], a[k], tau) for k in ok if k != j)
        return math.log(f(a[j], b[j], tau) / den)

    return -sum(ell(hat, til, j) + ell(til, hat, j) for j in range(P)) / 2 / P


@pytest.mark.parametrize("mask_same", [True, False])
def test_nip_and_cmcl_match_loops(mask_same):
    g = torch.Generator().manual_seed(1)
    hat, til, z = (torch.randn(6, 5, generator=g) for _ in range(3))
    tgt = torch.tensor([3, 7, 3, 1, 9, 7])  # two pairs share the next item
    same = M.same_target(tgt) if mask_same else None
    z[2] = z[0]  # the same item has the same z
    z[5] = z[1]
    assert M.nip_loss(hat, til, z, 0.5, same).item() == pytest.approx(nip_by_loops(hat, til, z, tgt.tolist(), 0.5, mask_same), rel=1e-5)
    assert M.cmcl_loss(hat, til, 0.5, same).item() == pytest.approx(cmcl_by_loops(hat, til, tgt.tolist(), 0.5, mask_same), rel=1e-5)


def test_pretrain_loss_is_eq_11():
    cfg = quiet(lam=0.3, temperature=0.2)
    net = model(cfg)
    batch = tiny_batch()
    keep = batch["targets"] >= 0
    tgt = batch["targets"][keep]
    items = batch["items"]
    with torch.no_grad():
        zt = net.item_repr("text", torch.arange(N_ITEMS))
        zv = net.item_repr("image", torch.arange(N_ITEMS))
        pad = lambda z: torch.cat([torch.zeros(1, z.shape[1]), z])  # noqa: E731
        ht = net.encode(pad(zt)[items])[keep]
        hv = net.encode(pad(zv)[items])[keep]
        Wt, Wv = net.proj["text"], net.proj["image"]
        hat_t, til_t, hat_v, til_v = Wt(ht), Wt(hv), Wv(hv), Wv(ht)  # eq. 6
        t = tgt.tolist()
        want = nip_by_loops(hat_t, til_t, zt[tgt], t, 0.2) + nip_by_loops(hat_v, til_v, zv[tgt], t, 0.2)
        want += 0.3 * (cmcl_by_loops(hat_t, til_t, t, 0.2) + cmcl_by_loops(hat_v, til_v, t, 0.2))
        got = net.pretrain_loss(batch).item()
    assert got == pytest.approx(want, rel=1e-4)
    # the ablation switches drop their terms
    for flag in ("nip", "cmcl"):
        other = model(quiet(lam=0.3, temperature=0.2, **{flag: False}))
        with torch.no_grad():
            part = other.pretrain_loss(batch).item()
        drop = nip_by_loops(hat_t, til_t, zt[tgt], t, 0.2) + nip_by_loops(hat_v, til_v, zv[tgt], t, 0.2)
        assert part == pytest.approx(want - drop if flag == "nip" else drop, rel=1e-4)


def eq_12_by_hand(net, items):
    """F^t + E, F^v + E (N, H) of every item, and h^t, h^v (B, L, H) of the batch `items`, step by step."""
    Ft = net.item_repr("text", torch.arange(N_ITEMS)) + net.item_emb.weight[1:]
    Fv = net.item_repr("image", torch.arange(N_ITEMS)) + net.item_emb.weight[1:]
    padT, padV = torch.cat([torch.zeros(1, 8), Ft]), torch.cat([torch.zeros(1, 8), Fv])
    return Ft, Fv, net.encode(padT[items]), net.encode(padV[items])


def test_finetune_loss_is_eq_12_13_and_score_matches():
    cfg = quiet(finetune_temperature=0.5)
    net = model(cfg)
    with torch.no_grad():
        net.item_emb.weight[1:].normal_()
    batch = tiny_batch()
    items, targets = batch["items"], batch["targets"]
    with torch.no_grad():
        total, count = 0.0, 0
        Ft, Fv, ht, hv = eq_12_by_hand(net, items)
        for b in range(items.shape[0]):
            for p in range(items.shape[1]):
                if targets[b, p] < 0:
                    continue
                logits = [(F.cosine_similarity(ht[b, p], Ft[i], 0) + F.cosine_similarity(hv[b, p], Fv[i], 0)).item() / 0.5 for i in range(N_ITEMS)]
                total += -(logits[targets[b, p]] - math.log(sum(math.exp(x) for x in logits)))
                count += 1
        assert net.loss(batch).item() == pytest.approx(total / count, rel=1e-5)
        # score: the same logits (sum of cosines / tau) at the last real position
        net.eval()
        sc = score(net, batch, torch.arange(N_ITEMS))
        last = batch["lengths"] - 1
        for b in range(items.shape[0]):
            want = (F.cosine_similarity(ht[b, last[b]][None], Ft) + F.cosine_similarity(hv[b, last[b]][None], Fv)) / 0.5
            assert torch.allclose(sc[b], want, atol=1e-5)


def test_dot_score_is_eq_12_as_printed():
    net = model(quiet(score="dot"))
    batch = tiny_batch()
    with torch.no_grad():
        net.item_emb.weight[1:].normal_()
        Ft, Fv, ht, hv = eq_12_by_hand(net, batch["items"])
        keep = batch["targets"] >= 0
        logits = ht[keep] @ Ft.T + hv[keep] @ Fv.T  # h^t (F^t + E)^T + h^v (F^v + E)^T, no temperature
        assert net.loss(batch).item() == pytest.approx(F.cross_entropy(logits, batch["targets"][keep]).item(), rel=1e-5)
        net.eval()
        last = batch["lengths"] - 1
        rows = torch.arange(len(last))
        want = ht[rows, last] @ Ft.T + hv[rows, last] @ Fv.T
        assert torch.allclose(score(net, batch, torch.arange(N_ITEMS)), want, atol=1e-5)


def test_text_only_and_image_only_score_one_term():
    batch = tiny_batch()
    both, t_only, v_only = model(), model(quiet(modalities=("text",))), model(quiet(modalities=("image",)))
    t_only.load_state_dict(both.state_dict())
    v_only.load_state_dict(both.state_dict())
    for net in (both, t_only, v_only):
        net.eval()
    with torch.no_grad():
        items = torch.arange(N_ITEMS)
        assert torch.allclose(score(both, batch, items), score(t_only, batch, items) + score(v_only, batch, items), atol=1e-5)


def test_e2e_adds_the_pretrain_loss():
    batch = tiny_batch()
    plain, e2e = model(), model(quiet(e2e=True))
    with torch.no_grad():
        assert e2e.loss(batch).item() == pytest.approx(plain.loss(batch).item() + plain.pretrain_loss(batch).item(), rel=1e-5)


# ---- augmentations -----------------------------------------------------------------------------


def test_seq_random_dropout_keeps_order_first_item_and_targets():
    torch.manual_seed(0)
    batch = tiny_batch()
    items, targets = batch["items"], batch["targets"]
    same_i, same_t = M.seq_random_dropout(items, targets, 0.0)
    assert torch.equal(same_i, items) and torch.equal(same_t, targets)
    new_i, new_t = M.seq_random_dropout(items, targets, 0.9)
    assert (new_i > 0).sum() < (items > 0).sum()  # something was dropped
    for b in range(items.shape[0]):
        pairs = [(i, t) for i, t in zip(items[b].tolist(), targets[b].tolist()) if i > 0]
        kept = [(i, t) for i, t in zip(new_i[b].tolist(), new_t[b].tolist()) if i > 0]
        assert kept[0] == pairs[0]  # the first item stays
        it = iter(pairs)
        assert all(any(k == p for p in it) for k in kept)  # a sub-sequence, each item with its own target
        n = len(kept)
        assert (new_i[b, n:] == 0).all() and (new_t[b, n:] == M.IGNORE).all()  # right-padded again


def test_pretrain_loss_says_how_many_targets_its_sequence_dropout_kept():
    """Under --nproc the loop weights each process's mean loss by its count of targets: with sequence
    dropout that is the count the mean was taken over, not the batch's count before dropout."""
    from mmrec_cli.training.distributed import count_targets

    net = model(quiet(seq_dropout=0.9))
    batch = tiny_batch()
    before = int((batch["targets"] >= 0).sum())
    torch.manual_seed(0)
    net.pretrain_loss(batch)
    torch.manual_seed(0)
    _, kept = M.seq_random_dropout(batch["items"], batch["targets"], 0.9)
    assert count_targets(batch) == int((kept >= 0).sum()) < before
    net.eval()  # no dropout: every target counts
    net.pretrain_loss(batch)
    assert count_targets(batch) == before


def test_prefix_dropout_moves_the_one_target_to_the_new_last_position():
    items = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    targets = torch.tensor([[-100, -100, -100, 9], [-100, 2, -100, -100]])
    torch.manual_seed(0)
    new_i, new_t = M.prefix_random_dropout(items, targets, 0.9)
    for b, target in enumerate((9, 2)):
        n = int((new_i[b] > 0).sum())
        kept = new_i[b, :n].tolist()
        assert kept[0] == items[b, 0] and all(k in items[b].tolist() for k in kept)  # first item stays, order kept
        assert new_t[b].tolist() == [-100] * (n - 1) + [target] + [-100] * (4 - n)
    assert (new_i > 0).sum() < (items > 0).sum()  # something was dropped


def test_prefix_instances_give_one_target_per_row_and_cover_every_prefix():
    from mmrec_cli.training.loop import TrainConfig

    ds = tiny_dataset(12, seed=3)
    batches = list(M.train_batches(ds, M.Config(max_len=10, instances="prefixes"), TrainConfig(batch_size=4, seed=7), 0))
    for x in batches:
        assert ((x["targets"] >= 0).sum(1) == 1).all()
        assert torch.equal(x["targets"][torch.arange(len(x["items"])), x["lengths"] - 1], x["target"])
    got = sorted((int(u), tuple(r[r > 0].tolist())) for x in batches for u, r in zip(x["user"], x["items"]))
    windows = [(int(x["user"][b]), x["items"][b], x["targets"][b]) for x in B.train_batches(ds, 10, 4, 7, 0) for b in range(len(x["items"]))]
    want = sorted((u, tuple(r[: k + 1].tolist())) for u, r, t in windows for k in range(len(r)) if t[k] >= 0)
    assert got == want  # each (prefix -> next item) of the windows, once, as its own row
    net = model(quiet(instances="prefixes"))
    assert net.pretrain_loss(batches[0]).isfinite() and net.loss(batches[0]).isfinite()


def test_finetune_loss_on_prefix_rows_equals_the_windows_loss():
    """A causal model sees the same prefix before each target either way: with no dropout, the mean
    fine-tuning loss (eq. 13) over all prefix rows equals the mean over all window positions."""
    from mmrec_cli.training.loop import TrainConfig

    ds = tiny_dataset(12, seed=3)
    net = model(quiet(instances="prefixes"))
    rows = list(M.train_batches(ds, net.cfg, TrainConfig(batch_size=1000, seed=7), 0))
    windows = next(B.train_batches(ds, 10, 1000, 7, 0))
    assert len(rows) == 1 and len(rows[0]["items"]) == int((windows["targets"] >= 0).sum())
    assert torch.allclose(net.loss(rows[0]), net.loss(windows), atol=1e-6)


def test_complementary_mixup_swaps_position_wise():
    torch.manual_seed(0)
    zt, zv = torch.randn(4, 6, 3), torch.randn(4, 6, 3)
    real = torch.ones(4, 6, dtype=torch.bool)
    real[:, 4:] = False
    mt, mv = M.complementary_mixup(zt, zv, real, 0.5)
    assert torch.allclose(mt + mv, zt + zv)  # complementary: each position is swapped in both or neither
    swapped = (mt != zt).any(-1)
    assert swapped.any() and not swapped[~real].any()
    assert torch.equal(mt[swapped], zv[swapped]) and torch.equal(mv[swapped], zt[swapped])
    mt0, mv0 = M.complementary_mixup(zt, zv, real, 0.0)
    assert torch.equal(mt0, zt) and torch.equal(mv0, zv)


def test_length_bucketed_batches_cover_every_window_once_and_repeat():
    from mmrec_cli.training.loop import TrainConfig

    ds = tiny_dataset(40, seed=3)
    tc = TrainConfig(batch_size=4, seed=7)
    plain = list(B.train_batches(ds, 10, 4, 7, 0))
    for bucket in (1, 3):
        cfg = M.Config(max_len=10, bucket=bucket)
        a, b = list(M.train_batches(ds, cfg, tc, 0)), list(M.train_batches(ds, cfg, tc, 0))
        assert all(torch.equal(x["items"], y["items"]) for x, y in zip(a, b))  # (seed, epoch) fixes the order
        rows = lambda bs: sorted((u, tuple(r.tolist()), tuple(t.tolist())) for x in bs for u, r, t in zip(x["user"].tolist(), [i[i > 0] for i in x["items"]], [t[t >= 0] for t in x["targets"]]))  # noqa: E731
        assert rows(a) == rows(plain)  # the same windows and targets, each once
    assert sum(x["items"].numel() for x in a) < sum(x["items"].numel() for x in plain)  # less padding
    assert not all(torch.equal(x["items"], y["items"]) for x, y in zip(a, M.train_batches(ds, cfg, tc, 1)))


# ---- gradients and learning ----------------------------------------------------------------------


def _grads(net, loss):
    net.zero_grad(set_to_none=True)
    loss.backward()
    return {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradient_reaches_every_parameter_that_trains():
    cfg = M.Config(hidden=8, heads=2, inner=16, experts=3, pool_hidden=5, max_len=10)  # with all dropouts and mixup
    net = model(cfg)
    with torch.no_grad():
        for enc in net.encoders.values():
            enc.gate.weight.normal_()  # zero gates have a gradient too, but make every path non-trivial
    net.train()
    batch = tiny_batch()
    # b2 of eq. 3 shifts every attention score of a stack alike, so softmax cancels it: its gradient is 0 up to
    # rounding, which is no evidence either way
    names = {n for n, _ in net.named_parameters()} - {"encoders.text.w2.bias", "encoders.image.w2.bias"}
    pre = _grads(net, net.pretrain_loss(batch)) & names
    # pre-training trains everything but the ID embeddings; the image stack has one row, so its pooling is constant
    assert pre == names - {"item_emb.weight"} - {n for n in names if n.startswith("encoders.image.w")}
    ft = _grads(net, net.loss(batch)) & names
    assert ft == names - {n for n in names if n.startswith("proj.")} - {n for n in names if n.startswith("encoders.image.w")}
    t_only = model(M.Config(hidden=8, heads=2, inner=16, experts=3, pool_hidden=5, max_len=10, modalities=("text",)))
    assert not any(n.startswith("encoders.image") for n in _grads(t_only, t_only.loss(batch)))


@pytest.mark.parametrize("stage", ["loss", "pretrain_loss"])
def test_a_few_steps_overfit_one_batch(stage):
    net = model(quiet())
    batch = tiny_batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = getattr(net, stage)(batch)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first, (first, loss.item())
    if stage == "loss":  # every training position now ranks its target first
        with torch.no_grad():
            batch_eval = {**batch}
            keep = batch["targets"] >= 0
            inputs, tables = net._finetune_inputs(batch["items"], full=True)
            logits = sum(F.normalize(net.encode(inputs[m])[keep], dim=-1) @ F.normalize(tables[m], dim=-1).T for m in net.mods)
            assert (logits.argmax(1) == batch_eval["targets"][keep]).float().mean() > 0.9


# ---- configuration --------------------------------------------------------------------------------


def test_config_is_validated():
    feats = tiny_features()
    for bad in (dict(modalities=("audio",)), dict(mixup_max=0.7), dict(nip=False, cmcl=False), dict(hidden=9, heads=2), dict(score="l2"), dict(instances="users")):
        with pytest.raises(MmrecError):
            M.Model(quiet(**bad), N_ITEMS, feats)
    with pytest.raises(MmrecError, match="lack modality 'image'"):
        M.Model(quiet(modalities=("image",)), N_ITEMS, {"text": feats["text"]})


def test_text_only_features_pretrain_with_nip_alone():
    """Text-only data (no images): the model uses the text modality, pre-training is NIP with its one view.
    It was refused ("needs both text and image features")."""
    feats = tiny_features()
    torch.manual_seed(0)
    net = M.Model(quiet(), N_ITEMS, {"text": feats["text"], "text_stack": feats["text_stack"], "text_stack_mask": feats["text_stack_mask"]})
    assert net.mods == ("text",) and "image" not in net.encoders
    loss = net.pretrain_loss(tiny_batch())
    assert torch.isfinite(loss) and loss.dim() == 0
    loss.backward()
    assert net.encoders["text"].experts.weight.grad is not None
    # one view: eq. 7 with m~ = m^ is the same InfoNCE (log 2x - log 2y = log x - log y)
    g = torch.Generator().manual_seed(3)
    hat, z = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert torch.allclose(M.nip_loss(hat, None, z, 0.1), M.nip_loss(hat, hat, z, 0.1), atol=1e-6)


def test_defaults_follow_the_official_code():
    c = M.Config()
    assert (c.hidden, c.layers, c.heads, c.experts, c.image_words, c.lam, c.temperature) == (64, 2, 2, 8, 15, 0.01, 0.07)
    assert c.mixup_max <= 0.5 and M.SPEC.modalities == ("text", "image") and models.stages("msm4sr") == ("pretrain", "finetune")


# ---- the CLI: pretrain (two datasets) -> finetune --init -> eval ---------------------------------------


@pytest.mark.slow
def test_cli_pretrain_finetune_eval(tmp_path):
    from conftest import tiny_sequences
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app
    from mmrec_cli.io import model_file

    seqs = tiny_sequences(num_users=12, num_items=N_ITEMS)
    ids = [f"i{i}" for i in range(N_ITEMS)]
    ds = D.from_sequences(seqs, ids, [f"u{u}" for u in range(len(seqs))])
    D.save(ds, str(tmp_path / "ds.safetensors"), "test", {}, {})
    feats = {k: v.numpy() for k, v in tiny_features().items()}
    FE.save(str(tmp_path / "f.safetensors"), feats, ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test-image"}})
    run = CliRunner()
    common = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.experts=2", "--set", "model.max_len=8"]
    d, fs = str(tmp_path / "ds.safetensors"), str(tmp_path / "f.safetensors")

    # pre-training on two datasets (merged catalogue) and on one
    r = run.invoke(app, ["pretrain", "msm4sr", d, d, "--features", fs, "--features", fs, "-o", str(tmp_path / "pre2.safetensors"), "--epochs", "2", *common])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["pretrain", "msm4sr", d, "--features", fs, "-o", str(tmp_path / "pre.safetensors"), "--epochs", "2", *common])
    assert r.exit_code == 0, r.output
    state, meta = model_file.load(str(tmp_path / "pre.safetensors"))
    assert meta["stage"] == "pretrain" and meta["config"]["model"]["image_source"] == "clip-image"
    assert meta["features"]["encoders"]["image"]["source"] == "test-image"

    for init, fresh in (("pre.safetensors", "0 trained from scratch"), ("pre2.safetensors", "1 trained from scratch")):
        out = str(tmp_path / f"ft-{init}")
        r = run.invoke(app, ["finetune", "msm4sr", d, "--features", fs, "--init", str(tmp_path / init), "-o", out, "--epochs", "2", *common])
        assert r.exit_code == 0, r.output
        assert fresh in r.output  # the merged catalogue's ID embeddings do not fit: they start fresh
        r = run.invoke(app, ["eval", out, d, "--features", fs, "--split", "test", "-o", str(tmp_path / "m.json")])
        assert r.exit_code == 0, r.output
        metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
        assert 0.0 <= metrics["ndcg@10"] <= 1.0 and metrics["users"] == 12

    # variants by --set: text-only fine-tuning, end-to-end training
    for extra in (["--set", "model.modalities=text"], ["--set", "model.e2e=true"]):
        r = run.invoke(app, ["finetune", "msm4sr", d, "--features", fs, "-o", str(tmp_path / "v.safetensors"), "--epochs", "1", *common, *extra])
        assert r.exit_code == 0, r.output
    r = run.invoke(app, ["finetune", "msm4sr", d, "--features", fs, "-o", str(tmp_path / "x.safetensors"), "--set", "model.modalities=audio"])
    assert r.exit_code == 3 and "MSM4SR-T" in r.output

    # seeds of a pre-trained and of a from-scratch fine-tuning: two groups for `eval --compare`, tested seed by seed
    results = []
    for name, init in (("pt", ["--init", str(tmp_path / "pre.safetensors")]), ("sc", [])):
        out = tmp_path / f"{name}.safetensors"
        r = run.invoke(app, ["finetune", "msm4sr", d, "--features", fs, *init, "-o", str(out), "--epochs", "1", "--seeds", "1,2", *common])
        assert r.exit_code == 0, r.output
        for s in (1, 2):
            res = str(tmp_path / f"{name}{s}.json")
            r = run.invoke(app, ["eval", str(tmp_path / f"{name}.seed{s}.safetensors"), d, "--features", fs, "--split", "test", "-o", res, "--rankings", res + "l"])
            assert r.exit_code == 0, r.output
            results.append(res)
    assert model_file.load(str(tmp_path / "pt.seed1.safetensors"))[1]["init"]["setting"] == loading.setting(meta)
    r = run.invoke(app, ["eval", "--compare", *results, "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c.json").read_text())
    assert [t["label"] for t in c["tests"]][-1] == "msm4sr · test (sc1.json) vs msm4sr · test (pt1.json), mean over seeds 1, 2"
    assert len(c["seeds"]) == 2 and len(c["tests"]) == 3


def test_text_only_pretraining_fine_tunes_on_text_and_image():
    """Pre-trained on a text-only domain, fine-tuned where images exist too: the text side loads, the image
    encoder starts fresh and the log names it."""
    from mmrec_cli.training import stages
    from mmrec_cli.training.loop import TrainConfig

    feats = tiny_features()
    text = {k: v for k, v in feats.items() if k.startswith("text")}
    ds = tiny_dataset(8)
    pre, _ = stages.pretrain("msm4sr", ds, text, quiet(), TrainConfig(epochs=1, batch_size=8), stages.Run())
    lines = []
    net, _ = stages.finetune("msm4sr", ds, feats, quiet(), TrainConfig(epochs=0), stages.Run(log=lines.append), pre.state_dict())
    assert net.mods == ("text", "image")
    loaded = [k for k in pre.state_dict() if k.startswith(("encoders.text.", "blocks.", "pos_emb."))]
    assert loaded and all(torch.equal(net.state_dict()[k], pre.state_dict()[k]) for k in loaded)
    assert "encoders.image" in lines[0] and "trained from scratch" in lines[0]


def test_pretraining_on_domains_of_other_modalities_says_what_it_leaves_out(tmp_path):
    """A text-only domain beside a text+image one: pre-training keeps the modality both have and says so
    in one line (before, the image features of the second domain were dropped without a word)."""
    from conftest import tiny_sequences
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app
    from mmrec_cli.io import model_file

    seqs = tiny_sequences(num_users=12, num_items=N_ITEMS)
    ids = [f"i{i}" for i in range(N_ITEMS)]
    D.save(D.from_sequences(seqs, ids, [f"u{u}" for u in range(len(seqs))]), str(tmp_path / "ds.safetensors"), "test", {}, {})
    feats = {k: v.numpy() for k, v in tiny_features(stacks=False).items()}
    FE.save(str(tmp_path / "both.safetensors"), feats, ids, "test", {}, {}, {"text": {"source": "t"}, "image": {"source": "i"}})
    FE.save(str(tmp_path / "text.safetensors"), {"text": feats["text"]}, ids, "test", {}, {}, {"text": {"source": "t"}})
    d = str(tmp_path / "ds.safetensors")
    r = CliRunner().invoke(app, ["pretrain", "msm4sr", d, d, "--features", str(tmp_path / "text.safetensors"), "--features", str(tmp_path / "both.safetensors"),
                                 "-o", str(tmp_path / "pre.safetensors"), "--epochs", "1", "--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.experts=2"])
    assert r.exit_code == 0, r.output
    assert f"pre-training without 'image': {tmp_path / 'text.safetensors'} has no 'image' features (a model pre-trains on the modalities every dataset has)" in r.stderr
    state, _ = model_file.load(str(tmp_path / "pre.safetensors"))
    assert any(k.startswith("encoders.text") for k in state) and not any(k.startswith("encoders.image") for k in state)
