import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.models import missrec as MR
from mmrec_cli.models import missrec_interests as CL
from mmrec_cli.models import score
from mmrec_cli.training import stages
from mmrec_cli.training.loop import TrainConfig

N_ITEMS, DIM = 24, 8


def tiny(num_users=14, num_items=N_ITEMS, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.choice(num_items, size=int(rng.integers(4, 9)), replace=False).tolist() for _ in range(num_users)]
    return D.from_sequences(seqs, [f"i{i}" for i in range(num_items)], [f"u{u}" for u in range(num_users)])


def feats(num_items=N_ITEMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"text": torch.randn(num_items, DIM, generator=g), "image": torch.randn(num_items, DIM, generator=g)}


def cfg(**kw):
    return MR.Config(**({"hidden": 16, "inner": 8, "heads": 2, "dropout": 0.1} | kw))


def first_batch(ds, c, bs=6):
    return next(MR.train_batches(ds, c, TrainConfig(batch_size=bs, seed=1), 0))


def interests_file(tmp_path, ds, f, method):
    """An `mmrec cluster`-like artifact written through the library."""
    from mmrec_cli.io import artifacts

    mods = ["text", "image"]
    tokens = CL.space_tokens(f, mods)
    meta = {"modalities": mods, "dataset": {"path": "x", "fingerprint": ds.fingerprint(), "item_fingerprint": ds.item_fingerprint()}}
    if method == "kmeans":
        assign, cent = CL.kmeans(tokens, 10, 5, 0)
        tensors, meta = {"table": assign.view(-1, 2), "centroids": cent}, meta | {"scope": "catalogue", "clusters": 10}
    else:
        tensors, meta = CL.user_interests(tokens, 2, CL.histories(ds, "valid", 50), 0.5, 0.1, batch_size=5), meta | {"scope": "users"}
    path = tmp_path / f"{method}.safetensors"
    artifacts.save(path, tensors, "interests", meta)
    return str(path)


@pytest.mark.parametrize("source", ["kmeans", "dpc-knn", "file-kmeans", "file-dpc"])
def test_shapes_for_every_interest_source(tmp_path, source):
    ds, f = tiny(), feats()
    interests = {"file-kmeans": lambda: interests_file(tmp_path, ds, f, "kmeans"), "file-dpc": lambda: interests_file(tmp_path, ds, f, "dpc")}.get(source, lambda: source)()
    c = cfg(interests=interests)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f)
    batch = first_batch(ds, c)
    B = batch["items"].shape[0]
    u, xi, imask = model.encode_batch(batch)
    assert u.shape == (B, 16) and torch.allclose(u.norm(dim=-1), torch.ones(B))
    assert xi.shape[:2] == imask.shape and xi.shape[0] == B and xi.shape[2] == 16
    assert imask.any(1).all()
    assert model.logits(u).shape == (B, N_ITEMS)
    assert score(model, batch, torch.tensor([0, 5, 7])).shape == (B, 3)
    for loss in (model.loss(batch), model.pretrain_loss(batch)):
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()


def test_moe_adapter_and_mean_fusion():
    ds, f = tiny(), feats()
    c = cfg(adapter="moe", experts=3, fusion="mean", ids=False)
    model = MR.Model(c, N_ITEMS, f)
    assert model.adapters["text"](torch.randn(5, DIM)).shape == (5, 16)
    batch = first_batch(ds, c)
    loss = model.loss(batch)
    loss.backward()
    assert model.adapters["text"].gate.weight.grad is not None and model.item_emb is None


def test_per_user_artifact_reproduces_dpc_knn_assignment(tmp_path):
    """The model assigns a clustered history's tokens to the nearest stored centre: DPC-KNN's own assignment."""
    ds, f = tiny(), feats()
    path = interests_file(tmp_path, ds, f, "dpc")
    from mmrec_cli.io import artifacts

    t, _ = artifacts.load(path, kind="interests")
    tokens = CL.space_tokens(f, ["text", "image"])
    hists = CL.histories(ds, "valid", 50)
    for u in range(ds.num_users):
        ids = torch.as_tensor((np.asarray(hists[u])[:, None] * 2 + np.arange(2)).ravel())
        centres = t["centres"][t["offsets"][u] : t["offsets"][u + 1]]
        got = CL.nearest(tokens[ids][None], torch.ones(1, len(ids), dtype=torch.bool), tokens[centres][None], torch.ones(1, len(centres), dtype=torch.bool))[0]
        assert got.tolist() == t["assign"][t["token_offsets"][u] : t["token_offsets"][u + 1]].tolist()
        # interests are in order of first appearance
        first = [got.tolist().index(k) for k in range(len(centres))]
        assert first == sorted(first)


def test_orthogonality_against_hand_computation():
    xi = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [9.0, 9.0]], [[0.5, 0.5], [7.0, 7.0], [7.0, 7.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    # row 0: (1/4) * (<a,a> + <b,b> + 2<a,b>) = (5 + 10 + 2*1) / 4; row 1: <c,c> = 0.5
    assert torch.allclose(MR.orthogonality(xi, mask), torch.tensor([17 / 4, 0.5]))


def test_seq_item_loss_against_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    want = (-(2 - math.log(math.exp(2) + 1)) - (3 - math.log(math.exp(1) + math.exp(3)))) / 2
    assert math.isclose(MR.seq_item_loss(logits).item(), want, rel_tol=1e-6)


def test_seq_seq_loss_against_hand_computation():
    u = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    v = F.normalize(torch.tensor([[0.9, 0.1], [0.5, 0.9], [-0.2, 1.0]]), dim=-1)
    tau = 0.5
    total = 0.0
    for i in range(3):
        pos = math.exp(float(u[i] @ v[i]) / tau)
        den = sum(math.exp(float(u[i] @ v[j]) / tau) for j in range(3)) + sum(math.exp(float(u[i] @ u[j]) / tau) for j in range(3) if j != i)
        total += -math.log(pos / den)
    assert math.isclose(MR.seq_seq_loss(u, v, tau).item(), total / 3, rel_tol=1e-6)


@pytest.mark.parametrize("ids", [False, True])
def test_fused_score_is_the_score_of_the_fused_item(ids):
    """<u, v_k> with v_k = sum_m e^{a s_m} x_m / sum_m e^{a s_m} (paper) = the decomposed score the model uses."""
    torch.manual_seed(0)
    model = MR.Model(cfg(ids=ids), N_ITEMS, feats())
    with torch.no_grad():
        model.fusion.fill_(1.7)
    u = F.normalize(torch.randn(3, 16), dim=-1)
    xt, xv = model.candidates()
    s_t, s_v = u @ xt.T, u @ xv.T  # (3, N)
    a = 1.7
    w_t, w_v = torch.exp(a * s_t), torch.exp(a * s_v)
    v = (w_t[..., None] * xt + w_v[..., None] * xv) / (w_t + w_v)[..., None]  # (3, N, H): v_k per user
    fused = (u[:, None, :] * v).sum(-1)
    if ids:
        z = F.normalize(model.item_emb.weight[1:], dim=-1)
        fused = (u @ z.T + 2 * fused) / 3
    assert torch.allclose(model.logits(u), fused / model.cfg.temperature, atol=1e-5)
    # alpha = 0 is mean pooling; a large alpha approaches max pooling
    with torch.no_grad():
        model.fusion.fill_(0.0)
    m = model.logits(u, use_ids=False) * model.cfg.temperature
    assert torch.allclose(m, (s_t + s_v) / 2, atol=1e-6)
    with torch.no_grad():
        model.fusion.fill_(1e4)
    m = model.logits(u, use_ids=False) * model.cfg.temperature
    assert torch.allclose(m, torch.maximum(s_t, s_v), atol=1e-4)


def test_losses_compose_as_documented(monkeypatch):
    ds, f = tiny(), feats()
    c = cfg(dropout=0.0, orth_weight=0.3, seq_seq_weight=0.7)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f).eval()
    batch = first_batch(ds, c)
    u, xi, imask = model.encode_batch(batch)
    orth = MR.orthogonality(xi, imask).mean()
    want = F.cross_entropy(model.logits(u), batch["target"]) + 0.3 * orth
    assert torch.allclose(model.loss(batch), want)
    monkeypatch.setattr(model, "augment", lambda items, lengths: (items, lengths, None, None))  # the second view = the first
    u, xi, imask = model.encode_batch(batch, use_ids=False)  # pre-training: no item IDs in the queries
    orth = MR.orthogonality(xi, imask).mean()
    want = MR.seq_item_loss(model.logits(u, batch["target"], use_ids=False)) + 0.7 * MR.seq_seq_loss(u, u, c.temperature) + 0.3 * orth
    assert torch.allclose(model.pretrain_loss(batch), want)


def test_item_drop_keeps_order_and_first_item():
    items = torch.tensor([[5, 6, 7, 8], [3, 4, 0, 0]])
    keep = torch.tensor([[True, False, True, True], [True, False, False, False]])
    assert MR.compact(items, keep).tolist() == [[5, 7, 8, 0], [3, 0, 0, 0]]
    model = MR.Model(cfg(item_drop_prob=1.0, item_drop=0.5), N_ITEMS, feats())
    torch.manual_seed(3)
    out, lengths, fmask, aug_text = model.augment(items, (items > 0).sum(1))
    assert fmask is None and aug_text is None and (out[:, 0] == items[:, 0]).all() and ((out > 0).sum(1) == lengths).all()


def test_second_view_takes_the_word_dropped_text_where_the_features_have_it():
    items = torch.tensor([[5, 6, 7, 8], [3, 4, 0, 0]])
    f = feats()
    f["text_aug"] = torch.randn(N_ITEMS, DIM, generator=torch.Generator().manual_seed(9))
    model = MR.Model(cfg(item_drop_prob=0.0, item_drop=0.5), N_ITEMS, f).eval()
    torch.manual_seed(0)
    out, lengths, fmask, aug_text = model.augment(items, (items > 0).sum(1))
    assert torch.equal(out, items) and fmask is None and aug_text.dtype == torch.bool
    assert aug_text.any() and not aug_text.all() and not aug_text[1, 2:].any()  # only real items
    swapped = MR.Model(cfg(item_drop_prob=0.0), N_ITEMS, f | {"text": f["text_aug"]})
    swapped.load_state_dict(model.state_dict())
    swapped.eval()
    everywhere = items > 0
    with torch.no_grad():
        assert torch.allclose(model.queries(items, None, False, everywhere)[0], swapped.queries(items, None, False)[0])
        assert not torch.allclose(model.queries(items, None, False, aug_text)[0], swapped.queries(items, None, False)[0])


@pytest.mark.parametrize("enc, dec", [(0, 1), (1, 0)])
def test_zero_encoder_or_decoder_layers_train_and_score_alike(enc, dec):
    """No encoder layer: the interests go through the stack's norm only; no decoder layer: the queries do."""
    ds, f = tiny(), feats()
    c = cfg(enc_layers=enc, dec_layers=dec, dropout=0.0)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f)
    batch = first_batch(ds, c)
    trained = model.train().loss(batch)
    trained.backward()
    with torch.no_grad():
        assert torch.allclose(model.eval().loss(batch), trained, atol=1e-5)
        assert score(model, batch, torch.arange(N_ITEMS)).shape == (len(batch["items"]), N_ITEMS)


def test_prefix_examples():
    ds = D.from_sequences([[0, 1, 2, 3, 4], [5, 6, 7]], [f"i{i}" for i in range(8)], ["a", "b"])  # train: 0 1 2 | 5
    flat, start, end, user = B.prefixes(ds, max_len=2)
    got = [(flat[s:e].tolist(), int(flat[e]), int(u)) for s, e, u in zip(start, end, user)]
    assert got == [([0], 1, 0), ([0, 1], 2, 0)]
    batch = B.collate_prefixes(flat, start, end, user)
    assert batch["items"].tolist() == [[1, 0], [1, 2]] and batch["target"].tolist() == [1, 2]


def _pretrained(ds, f, c):
    train = TrainConfig(epochs=1, batch_size=8, seed=0)
    model, _ = stages.pretrain("missrec", ds, f, c, train, stages.Run())
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_finetuning_from_pretrained_keeps_the_transformer_bit_identical():
    ds, f = tiny(), feats()
    c = cfg()
    init = _pretrained(ds, f, c)
    model, _ = stages.finetune("missrec", ds, f, c, TrainConfig(epochs=2, batch_size=8, seed=0, patience=0), stages.Run(), init)
    state = model.state_dict()
    frozen = [k for k in state if k.startswith(("encoder.", "decoder.", "pos_emb."))]
    assert frozen and all(torch.equal(state[k], init[k]) for k in frozen)
    trained = ["adapters.text.weight", "adapters.image.weight", "norm.weight", "fusion", "item_emb.weight"]
    assert all(not torch.equal(state[k], init[k]) for k in trained)
    # full=true trains everything
    model, _ = stages.finetune("missrec", ds, f, cfg(full=True), TrainConfig(epochs=1, batch_size=8, seed=0), stages.Run(), init)
    assert not torch.equal(model.state_dict()["encoder.layers.0.linear1.weight"], init["encoder.layers.0.linear1.weight"])


def test_inductive_transfer_scores_items_without_id_embeddings():
    src, f_src = tiny(), feats()
    init = _pretrained(src, f_src, cfg(ids=False))
    # a target catalogue with 10 more items, some of which no target user ever trained on
    n = N_ITEMS + 10
    rng = np.random.default_rng(5)
    seqs = [rng.choice(N_ITEMS, size=5, replace=False).tolist() for _ in range(10)]
    tgt = D.from_sequences(seqs, [f"t{i}" for i in range(n)], [f"v{u}" for u in range(10)])
    f_tgt = feats(n, seed=1)
    model, _ = stages.transfer("missrec", tgt, f_tgt, cfg(ids=False), TrainConfig(epochs=1, batch_size=8, seed=0), stages.Run(), init)
    assert model.item_emb is None
    assert all(not k.startswith("item_emb") for k in model.state_dict())
    from mmrec_cli.data.batches import collate_eval, eval_rows

    hist, _, users = eval_rows(tgt, "test")
    cold = torch.arange(N_ITEMS, n)  # never interacted with
    scores = score(model.eval(), collate_eval(hist, users, 50), cold)
    assert scores.shape == (len(users), 10) and torch.isfinite(scores).all()
    assert scores.std(1).min() > 0  # told apart by their features
    # zero-shot (no fine-tuning epochs): still a working model on the new catalogue
    model, _ = stages.transfer("missrec", tgt, f_tgt, cfg(ids=False), TrainConfig(epochs=0), stages.Run(), init)
    assert torch.isfinite(score(model.eval(), collate_eval(hist, users, 50), torch.arange(n))).all()


def test_cli_cluster_pretrain_finetune_transfer_eval(tmp_path):
    import json

    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app
    from mmrec_cli.io import feature_file as FE

    ds, f = tiny(num_users=16), feats()
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    FE.save(str(tmp_path / "f.safetensors"), f, ds.item_ids, {"command": "test"}, {}, {}, {})
    tgt = tiny(num_users=12, seed=7)
    D.save(tgt, str(tmp_path / "tgt.safetensors"), {"command": "test"}, {}, {})
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"model": {"hidden": 16, "inner": 8, "heads": 2}, "train": {"batch_size": 8, "epochs": 1}}))
    p = lambda name: str(tmp_path / name)  # noqa: E731
    runner = CliRunner()
    steps = [
        ["cluster", p("f.safetensors"), p("ds.safetensors"), "-o", p("dpc.safetensors")],
        ["cluster", p("f.safetensors"), p("ds.safetensors"), "-o", p("km.safetensors"), "--method", "kmeans"],
        ["pretrain", "missrec", p("ds.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "--features", p("f.safetensors"), "-o", p("pre.safetensors"), "--config", str(conf)],
        ["finetune", "missrec", p("ds.safetensors"), "--features", p("f.safetensors"), "--init", p("pre.safetensors"), "-o", p("ft.safetensors"), "--config", str(conf), "--set", f"model.interests={p('dpc.safetensors')}"],
        ["finetune", "missrec", p("ds.safetensors"), "--features", p("f.safetensors"), "-o", p("km.model.safetensors"), "--config", str(conf), "--set", f"model.interests={p('km.safetensors')}"],
        ["transfer", p("pre.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "--mode", "inductive", "-o", p("ind.safetensors"), "--config", str(conf)],
        ["transfer", p("pre.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "--mode", "transductive", "-o", p("trd.safetensors"), "--config", str(conf)],
        ["eval", p("ft.safetensors"), p("ds.safetensors"), "--features", p("f.safetensors"), "-o", p("ft.json")],
        ["eval", p("ind.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "--split", "test", "-o", p("ind.json")],
    ]
    for args in steps:
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args[0], r.output)
    assert json.loads((tmp_path / "ind.json").read_text())["metrics"]["users"] == 12
    # a config that disagrees with the pre-trained shapes: the pre-trained ones are kept, said after the result
    r = runner.invoke(app, ["transfer", p("pre.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "-o", p("ind2.safetensors"), "--config", str(conf), "--set", "model.inner=12"])
    assert r.exit_code == 0 and r.stderr.splitlines()[-1] == "kept the pre-trained model's architecture: model.inner = 8 (not 12)", r.stderr
    # an interests artifact of another dataset is refused
    r = runner.invoke(app, ["finetune", "missrec", p("tgt.safetensors"), "--features", p("f.safetensors"), "-o", p("x.safetensors"), "--config", str(conf), "--set", f"model.interests={p('dpc.safetensors')}"])
    assert r.exit_code == 5 and "run `mmrec cluster` on this dataset" in r.output


def _target_domain():
    n = N_ITEMS + 10
    rng = np.random.default_rng(5)
    seqs = [rng.choice(n, size=5, replace=False).tolist() for _ in range(10)]
    return D.from_sequences(seqs, [f"t{i}" for i in range(n)], [f"v{u}" for u in range(10)]), feats(n, seed=1)


def test_zero_shot_transfer_reclusters_the_new_catalogue():
    """The interest table and centroids are catalogue-sized and start fresh on a new catalogue: they must be
    re-clustered there, not left as zeros (every token in cluster 0 with a zero centroid)."""
    init = _pretrained(tiny(), feats(), cfg(ids=False))
    tgt, f_tgt = _target_domain()
    model, _ = stages.transfer("missrec", tgt, f_tgt, cfg(ids=False), TrainConfig(epochs=0), stages.Run(), init)
    from mmrec_cli.data.batches import collate_eval, eval_rows

    hist, _, users = eval_rows(tgt, "test")
    batch = collate_eval(hist, users, 50)
    with torch.no_grad():
        scores = score(model.eval(), batch, torch.arange(tgt.num_items))
        assert model.interest_centroids.abs().sum() > 0 and len(model.interest_table.unique()) > 1
        model.interest_centroids.zero_()  # what the interests were before: no information
        blind = model.score_users(model.encode(batch["items"], batch["lengths"])[0], torch.arange(tgt.num_items))
    assert not torch.allclose(scores, blind)


def test_finetune_init_refuses_a_frozen_tensor_it_could_not_load():
    """--init from a pre-training with another architecture must not train on frozen random weights."""
    ds, f = tiny(), feats()
    init = _pretrained(ds, f, cfg(ids=False))
    with pytest.raises(MmrecError, match=r"pos_emb.weight has shape \(50, 16\) in the pre-trained model but \(20, 16\) here"):
        stages.finetune("missrec", ds, f, cfg(max_len=20), TrainConfig(epochs=1, batch_size=8), stages.Run(), init)


def test_pretraining_uses_no_item_ids_even_when_the_config_has_them():
    """The official pre-training has no ID embeddings (they cannot transfer); model.ids=true put them into
    the pre-training queries."""
    ds, f = tiny(), feats()
    torch.manual_seed(0)
    model = MR.Model(cfg(ids=True, dropout=0.0), ds.num_items, f)
    batch = first_batch(ds, cfg(ids=True))

    def loss():
        torch.manual_seed(1)  # the same augmented view both times
        return model.pretrain_loss(batch)

    before = loss()
    with torch.no_grad():
        model.item_emb.weight.mul_(5.0)
    assert torch.equal(loss(), before)
