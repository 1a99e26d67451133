"""AlignRec: graphs against dense / brute-force references, losses against hand-computed values,
batches, the user table sized from the dataset, shares of a batch (--nproc), the feature probe, and the CLI pretrain -> finetune -> eval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmrec_cli.data import dataset as D
from mmrec_cli.io import feature_file as FE
from mmrec_cli.models import alignrec as A
from mmrec_cli.models import alignrec_graph as G
from mmrec_cli.models import score
from mmrec_cli.training.loop import TrainConfig

N_ITEMS = 20


def tiny_features(num_items: int = N_ITEMS, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"text": torch.randn(num_items, 12, generator=g), "image": torch.randn(num_items, 10, generator=g)}


def tiny_ds(protocol: str = "ratio", num_users: int = 12) -> D.Dataset:
    from conftest import tiny_sequences

    seqs = tiny_sequences(num_users=num_users, num_items=N_ITEMS)
    return D.from_sequences(seqs, [f"i{i}" for i in range(N_ITEMS)], [f"u{u}" for u in range(len(seqs))], protocol=protocol, seed=1)


def small(**kw) -> A.Config:
    base = dict(embedding=8, knn_k=3, enc_chunks=4, enc_hidden=8, enc_heads=2, enc_layers=1, enc_dropout=0.0)
    return A.Config(**(base | kw))


# ---- graphs -------------------------------------------------------------------------------------


def test_lightgcn_propagation_matches_a_dense_reference():
    users = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    items = torch.tensor([0, 1, 1, 0, 2, 3, 3])
    U, N = 4, 5  # item 4 has no interaction
    a_hat, r_hat = G.normalized_adjacency(users, items, U, N)
    R = torch.zeros(U, N)
    R[users, items] = 1
    A_ = torch.zeros(U + N, U + N)
    A_[:U, U:], A_[U:, :U] = R, R.T
    deg = A_.sum(1)
    dinv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    A_hat = dinv[:, None] * A_ * dinv[None, :]
    assert torch.allclose(a_hat.to_dense(), A_hat) and torch.allclose(r_hat.to_dense(), A_hat[:U, U:])
    x = torch.randn(U + N, 3)
    want = (x + A_hat @ x + A_hat @ A_hat @ x) / 3
    assert torch.allclose(G.propagate(a_hat, x, 2), want, atol=1e-6)
    assert torch.allclose(G.propagate(a_hat, x, 0), x)


def test_knn_graph_matches_brute_force():
    torch.manual_seed(0)
    x = torch.randn(37, 6)
    k = 4
    sim = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T
    top = sim.topk(k, dim=1)
    for chunk_bytes in (4 * 37 * 5, 1 << 26):  # 5 rows per chunk, and all at once
        v, i = G.knn(x, k, chunk_bytes)
        assert torch.equal(i, top.indices) and torch.allclose(v, top.values, atol=1e-6)
        assert (i[:, 0] == torch.arange(37)).all()  # an item is its own nearest neighbour
        S = G.knn_graph(x, k, chunk_bytes).to_dense()
        W = torch.zeros(37, 37).scatter_(1, top.indices, top.values.clamp_min(0))
        d = W.sum(1)
        assert torch.allclose(S, W / torch.sqrt(d[:, None] * d[None, :]), atol=1e-6)
        assert ((S > 0).sum(1) <= k).all()


def test_train_pairs_are_the_train_split_only():
    ds = tiny_ds()
    users, items = G.train_pairs(ds)
    want = {(u, int(i)) for u in range(ds.num_users) for i, lab in zip(ds.sequence(u), ds.labels(u)) if lab == D.TRAIN}
    assert set(zip(users.tolist(), items.tolist())) == want and len(users) == len(want)


# ---- losses ---------------------------------------------------------------------------------------


def test_bpr_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # differences: 2 - 1 = 1 and 2 - 0 = 2
    want = -(math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(-2)))) / 2
    assert A.bpr_loss(u, p, n).item() == pytest.approx(want, rel=1e-6)


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    tau = 0.5
    c = 1 / math.sqrt(2)  # cos(a1, b0) = cos(a1, b1)
    row0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0 / tau)))
    row1 = -math.log(math.exp(c / tau) / (math.exp(c / tau) + math.exp(c / tau)))
    assert A.info_nce(a, b, tau).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_uia_by_hand():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    i = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert A.uia_loss(u, i).item() == pytest.approx(1 - (1 + 0) / 2)


def test_similarity_reg_by_hand_and_stop_gradient():
    h_mm = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    h_enc = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    # C(h_mm) = I; C(h_enc) off-diagonal = 1/sqrt(2); Frobenius norm of the difference / batch size
    want = math.sqrt(2 * 0.5) / 2
    loss = A.similarity_reg(h_mm, h_enc)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert h_enc.grad is None and h_mm.grad is not None


# ---- batches and the model ------------------------------------------------------------------------


def test_negatives_are_unseen_and_batches_are_reproducible():
    ds = tiny_ds()
    tc = TrainConfig(batch_size=16, seed=3)
    a = list(A.train_batches(ds, small(), tc, 0))
    b = list(A.train_batches(ds, small(), tc, 0))
    c = list(A.train_batches(ds, small(), tc, 1))
    assert all(torch.equal(x["neg"], y["neg"]) and torch.equal(x["user"], y["user"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["neg"], y["neg"]) for x, y in zip(a, c))
    users, items = G.train_pairs(ds)
    seen = set(zip(users.tolist(), items.tolist()))
    got = [(int(u), int(p), int(n)) for x in a for u, p, n in zip(x["user"], x["pos"], x["neg"])]
    assert sorted((u, p) for u, p, _ in got) == sorted(seen)
    assert all((u, n) not in seen for u, _, n in got)
    pre = list(A.train_batches(ds, small(), tc, 0, stage="pretrain"))
    assert sorted(torch.cat([x["item_index"] for x in pre]).tolist()) == list(range(N_ITEMS))


@pytest.mark.parametrize("cfg", [small(content="raw"), small(content="raw", multimodal=False, alpha=0, beta=0, lam=0)])
def test_model_trains_and_reloads(cfg):
    ds = tiny_ds()
    torch.manual_seed(0)
    net = A.Model(cfg, N_ITEMS, tiny_features(), num_users=ds.num_users)
    assert net.user_emb.shape == (ds.num_users, 8)  # sized at construction, never by a batch
    batches = list(A.train_batches(ds, cfg, TrainConfig(batch_size=32), 0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        for b in batches:
            opt.zero_grad()
            loss = net.loss(b)
            first = first if first is not None else loss.item()
            loss.backward()
            opt.step()
    assert net.user_emb.shape == (ds.num_users, 8) and loss.item() < first
    net.eval()
    batch = {"user": torch.tensor([0, 3, 5])}
    s = score(net, batch, torch.arange(N_ITEMS))
    assert s.shape == (3, N_ITEMS)
    # a fresh model takes the state (user table and graph included) and scores the same
    other = A.Model(cfg, N_ITEMS, tiny_features())
    other.load_state_dict(net.state_dict())
    assert torch.allclose(score(other.eval(), batch, torch.arange(N_ITEMS)), s, atol=1e-5)
    assert not any(k.startswith("feat_") for k in net.state_dict())


def test_user_table_comes_from_the_dataset_not_the_batches():
    from mmrec_cli.errors import MmrecError
    from mmrec_cli.training import stages

    ds, cfg = tiny_ds(), small(content="raw")
    torch.manual_seed(0)
    net = stages.recommender(A.SPEC, cfg, ds, tiny_features())  # what finetune builds
    assert net.user_emb.shape == (ds.num_users, 8)
    torch.manual_seed(0)
    bare = A.Model(cfg, N_ITEMS, tiny_features())  # pre-training: no user table
    assert bare.user_emb.shape == (0, 8)
    # the user table is drawn last: the other layers start the same with or without users
    assert all(torch.equal(v, bare.state_dict()[k]) for k, v in net.state_dict().items() if k != "user_emb")
    b = next(A.train_batches(ds, cfg, TrainConfig(batch_size=64), 0))
    with pytest.raises(MmrecError, match="built for 0 users but the training graph has 12") as err:
        bare.loss(b)
    assert err.value.code == 5
    table = net.user_emb
    net.loss(b)
    assert net.user_emb is table and net.ui_users.numel() == len(G.train_pairs(ds)[0])


@pytest.mark.parametrize("cfg", [small(content="raw"), small(content="raw", alpha=0.5, lam=0.5)])
def test_shares_of_a_batch_add_up_to_the_batch(cfg):
    """What --nproc relies on: each share's loss, weighted by its share of the rows, sums to the
    global batch's loss, and so do the gradients, in-batch CCA and REG included (`in_batch`)."""
    from mmrec_cli.training import distributed as Dist

    ds = tiny_ds()
    torch.manual_seed(0)
    net = A.Model(cfg, N_ITEMS, tiny_features(), num_users=ds.num_users)
    batch = next(A.train_batches(ds, cfg, TrainConfig(batch_size=7), 0))
    whole = net.loss(batch)
    want = torch.autograd.grad(whole, [net.user_emb, net.item_emb, net.mm_trs.weight])
    parts = [next(Dist.shard([batch], r, 3)) for r in range(3)]
    n = [Dist.count_targets(b) for b in parts]
    assert n == [3, 2, 2] and all(b["in_batch"] is batch["in_batch"] for b in parts)
    total = sum(net.loss(b) * k / sum(n) for b, k in zip(parts, n))
    got = torch.autograd.grad(total, [net.user_emb, net.item_emb, net.mm_trs.weight])
    assert total.item() == pytest.approx(whole.item(), abs=1e-6)
    assert all(torch.allclose(g, w, atol=1e-7) for g, w in zip(got, want))


def test_encoder_pretraining_and_the_unpretrained_error():
    from mmrec_cli.errors import MmrecError

    ds = tiny_ds()
    cfg = small()
    torch.manual_seed(0)
    net = A.Model(cfg, N_ITEMS, tiny_features(), num_users=ds.num_users)
    b = next(A.train_batches(ds, cfg, TrainConfig(batch_size=64), 0))
    with pytest.raises(MmrecError, match="not pre-trained"):
        net.loss(b)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    pre = next(A.train_batches(ds, cfg, TrainConfig(batch_size=64), 0, stage="pretrain"))
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = net.pretrain_loss(pre)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert int(net.encoder_trained) == 1 and np.mean(losses[-5:]) < np.mean(losses[:5])
    h_enc, s = net.content()
    assert h_enc.shape == (N_ITEMS, 8) and s._nnz() <= N_ITEMS * 3
    assert net.loss(b).dim() == 0


def test_feature_probe_by_hand():
    table = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    probe = A.FeatureProbe(table)
    batch = {"items": torch.tensor([[1, 2, 0]])}  # history: items 0 and 1 (+1 coded), one pad
    s = score(probe, batch, torch.arange(3))
    user = F.normalize(torch.tensor([1.0, 1.0]), dim=0)  # mean of the normalised rows, normalised
    want = user @ F.normalize(table, dim=1).T
    assert torch.allclose(s[0], want)
    ds = tiny_ds()
    out = A.probe(ds, tiny_features(), split="valid")
    assert set(out) == {"text", "image", "image+text"} and all(0 <= m["recall@20"] <= 1 for m in out.values())


def test_cli_pretrain_finetune_eval_probe(tmp_path):
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    ds = tiny_ds()
    D.save(ds, str(tmp_path / "ds.safetensors"), "test", {}, {})
    feats = {k: v.numpy() for k, v in tiny_features().items()}
    FE.save(str(tmp_path / "f.safetensors"), feats, ds.item_ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test"}})
    d, fs = str(tmp_path / "ds.safetensors"), str(tmp_path / "f.safetensors")
    pre, out = str(tmp_path / "pre.safetensors"), str(tmp_path / "m.safetensors")
    arch = ["--set", "model.embedding=8", "--set", "model.enc_chunks=4", "--set", "model.enc_hidden=8", "--set", "model.enc_heads=2", "--set", "model.knn_k=3"]
    run = CliRunner()
    r = run.invoke(app, ["pretrain", "alignrec", d, "--features", fs, "-o", pre, "--epochs", "2", *arch])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["finetune", "alignrec", d, "--features", fs, "-o", out, "--epochs", "2", *arch])
    assert r.exit_code == 3 and "mmrec pretrain alignrec" in r.output
    r = run.invoke(app, ["finetune", "alignrec", d, "--features", fs, "--init", pre, "-o", out, "--epochs", "3", "--set", "train.metric=recall@20", *arch])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["eval", out, d, "--features", fs, "--split", "test", "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["mask_history"] is True and result["protocol"] == "ratio" and 0 <= result["metrics"]["recall@20"] <= 1
    r = run.invoke(app, ["eval", "--probe", d, "--features", fs, "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    probe = json.loads((tmp_path / "p.json").read_text())
    assert set(probe["probe"]) == {"text", "image", "image+text"} and probe["mask_history"] is True


def test_text_only_features_align_and_train():
    """One modality: ICA masks and regresses that modality's own tokens, h_enc is built from it alone.
    Text-only features were refused ("the features file lacks image")."""
    ds, text = tiny_ds(), {"text": tiny_features()["text"]}
    tc = TrainConfig(batch_size=8)
    torch.manual_seed(0)
    net = A.Model(small(), N_ITEMS, text, num_users=ds.num_users)
    assert net.mods == ["text"]
    pre = net.pretrain_loss(next(A.train_batches(ds, small(), tc, 0, stage="pretrain")))
    assert torch.isfinite(pre) and pre.dim() == 0
    for content in ("encoder", "raw"):
        net = A.Model(small(content=content), N_ITEMS, text, num_users=ds.num_users)
        net.encoder_trained.fill_(1)
        loss = net.loss(next(A.train_batches(ds, small(), tc, 0)))
        assert torch.isfinite(loss)
        loss.backward()


def test_eval_records_what_the_ranking_masked(tmp_path):
    """Under the ratio split the test ranking masks the train items (MMRec's protocol); --mask-valid adds the valid ones."""
    import json

    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    ds = tiny_ds()
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    FE.save(str(tmp_path / "f.safetensors"), tiny_features(), ds.item_ids, "test", {}, {}, {})
    common = ["--features", str(tmp_path / "f.safetensors")]
    r = CliRunner().invoke(app, ["finetune", "alignrec", str(tmp_path / "ds.safetensors"), *common, "--epochs", "1", "--set", "model.content=raw", "--set", "model.embedding=8", "-o", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 0, r.output
    for extra, want in (([], "train"), (["--mask-valid"], "train+valid"), (["--no-mask-history"], "none")):
        out = tmp_path / f"r{len(extra)}{want}.json"
        r = CliRunner().invoke(app, ["eval", str(tmp_path / "m.safetensors"), str(tmp_path / "ds.safetensors"), *common, "--split", "test", *extra, "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert json.loads(out.read_text())["masked"] == want
