"""MISSRec's training-time recomputation: the block path gives the bits of nn.TransformerEncoder /
nn.TransformerDecoder (outputs, gradients, random state) and keeps a fraction of their activations."""

import pytest
import torch
import torch.nn.functional as F
from test_missrec import N_ITEMS, cfg, feats, first_batch, interests_file, tiny

from mmrec_cli.models import missrec as MR


def module_encode(model, items, lengths, feature_mask=None, use_ids=True, users=None, aug_text=None):
    """encode() through the nn.Transformer stacks, as evaluation runs it (and training did)."""
    valid = items > 0
    q, tokens = model.queries(items, feature_mask, use_ids, aug_text)
    interests, imask = model.interest_tokens(items, tokens, valid, users)
    xi = model.encoder(interests, src_key_padding_mask=~imask)
    out = model.decoder(q, xi, tgt_key_padding_mask=~valid, memory_key_padding_mask=~imask)
    return F.normalize(MR.last(out, lengths), dim=-1), xi, imask


def module_loss(model, batch):
    """loss() without recomputation: cross-entropy + gamma * R through the nn.Transformer stacks."""
    model._sync(batch)
    u, xi, imask = module_encode(model, batch["items"], batch["lengths"], users=batch["user"])
    return F.cross_entropy(model.logits(u), batch["target"]) + model.cfg.orth_weight * MR.orthogonality(xi, imask).mean()


def module_pretrain_loss(model, batch):
    """pretrain_loss() without recomputation: both views through the nn.Transformer stacks."""
    model._sync(batch)
    u, xi, imask = module_encode(model, batch["items"], batch["lengths"], use_ids=False)
    items, lengths, fmask, aug_text = model.augment(batch["items"], batch["lengths"])
    u_aug, _, _ = module_encode(model, items, lengths, fmask, use_ids=False, aug_text=aug_text)
    si = MR.seq_item_loss(model.logits(u, batch["target"], use_ids=False))
    ss = MR.seq_seq_loss(u, u_aug, model.cfg.temperature)
    return si + model.cfg.seq_seq_weight * ss + model.cfg.orth_weight * MR.orthogonality(xi, imask).mean()


def grads_of(model, loss_fn, seed):
    """(loss, {name: grad}, the next random number) of one backward pass from `seed`."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, torch.rand(())


def assert_same_bits(a, b):
    (la, ga, ra), (lb, gb, rb) = a, b
    assert torch.equal(la, lb)
    assert ga.keys() == gb.keys() and len(ga) >= 5
    for name in ga:
        assert torch.equal(ga[name], gb[name]), name
    assert torch.equal(ra, rb)  # the dropout masks drew the same numbers, and no more


@pytest.mark.parametrize("interests", ["kmeans", "dpc-knn", "kmeans-file", "dpc-file"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fine_tuning_loss_and_gradients_are_the_bits_of_the_transformer_stacks(tmp_path, interests, layers):
    ds, f = tiny(), feats()
    if interests.endswith("-file"):  # an `mmrec cluster` artifact: a catalogue table, or per-user centres
        interests = interests_file(tmp_path, ds, f, interests[:-5])
    c = cfg(interests=interests, enc_layers=layers, dec_layers=layers, dropout=0.3)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f).train()
    batch = first_batch(ds, c, bs=8)
    model._sync(batch)

    assert_same_bits(grads_of(model, lambda: model.loss(batch), 5), grads_of(model, lambda: module_loss(model, batch), 5))


@pytest.mark.parametrize("item_drop_prob, word_drop", [(1.0, False), (0.0, False), (0.0, True)])  # second view: item drop, feature drop, TEXT_aug
def test_pretraining_loss_and_gradients_are_the_bits_of_the_transformer_stacks(item_drop_prob, word_drop):
    ds, f = tiny(), feats()
    if word_drop:
        f["text_aug"] = f["text"] + 0.5 * torch.randn(f["text"].shape, generator=torch.Generator().manual_seed(4))
    c = cfg(dropout=0.3, item_drop_prob=item_drop_prob, seq_seq_weight=0.5, orth_weight=0.1)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f).train()
    batch = first_batch(ds, c, bs=8)
    assert_same_bits(grads_of(model, lambda: model.pretrain_loss(batch), 7), grads_of(model, lambda: module_pretrain_loss(model, batch), 7))


def test_without_recomputation_losses_and_gradients_are_the_same_bits_and_more_is_kept():
    """model.recompute = false: the blocks keep their activations (faster), the results do not change."""
    ds, f = tiny(num_users=40), feats()
    base = dict(hidden=32, inner=32, heads=2, dropout=0.3, seq_seq_weight=0.5, orth_weight=0.1)
    on, off = cfg(**base), cfg(**base, recompute=False)
    torch.manual_seed(0)
    a = MR.Model(on, N_ITEMS, f).train()
    b = MR.Model(off, N_ITEMS, f).train()
    b.load_state_dict(a.state_dict())
    batch = first_batch(ds, on, bs=32)
    for m in (a, b):
        m._sync(batch)
    assert_same_bits(grads_of(a, lambda: a.loss(batch), 3), grads_of(b, lambda: b.loss(batch), 3))
    assert_same_bits(grads_of(a, lambda: a.pretrain_loss(batch), 7), grads_of(b, lambda: b.pretrain_loss(batch), 7))
    assert saved_bytes(lambda: b.pretrain_loss(batch)) > 10 * saved_bytes(lambda: a.pretrain_loss(batch))


def test_a_frozen_transformer_gets_no_gradient_and_the_adapters_the_same_one():
    """Fine-tuning after pre-training: the transformer is frozen, the gradients reach the adapters through it."""
    ds, f = tiny(), feats()
    c = cfg(dropout=0.3)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f).train()
    MR.after_init(model)
    batch = first_batch(ds, c, bs=8)
    model._sync(batch)
    got = grads_of(model, lambda: model.loss(batch), 3)
    assert not any(n.startswith(("encoder.", "decoder.", "pos_emb.")) for n in got[1])
    assert "adapters.text.weight" in got[1]
    assert_same_bits(got, grads_of(model, lambda: module_loss(model, batch), 3))


def saved_bytes(fn) -> int:
    """Bytes the autograd graph of fn() keeps for the backward pass (distinct storages)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_training_keeps_a_fraction_of_the_activations():
    ds, f = tiny(num_users=40), feats()
    c = cfg(hidden=32, inner=32, heads=2, dropout=0.3)
    torch.manual_seed(0)
    model = MR.Model(c, N_ITEMS, f).train()
    batch = first_batch(ds, c, bs=32)
    model._sync(batch)
    kept, full = saved_bytes(lambda: model.pretrain_loss(batch)), saved_bytes(lambda: module_pretrain_loss(model, batch))
    B, L = batch["items"].shape
    assert full > 40 * B * L * c.hidden * 4  # the stacks keep dozens of (B, L, H) activations per view
    assert kept < full / 10


def test_recomputed_is_the_function_itself():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4, requires_grad=True)

    def fn(x):
        return F.dropout(torch.tanh(lin(x)), 0.5) * 2

    torch.manual_seed(1)
    a = MR.recomputed(fn, x)
    a.sum().backward()
    ga, ra = (x.grad.clone(), lin.weight.grad.clone()), torch.rand(())
    x.grad, lin.weight.grad = None, None
    torch.manual_seed(1)
    b = fn(x)
    b.sum().backward()
    assert torch.equal(a, b) and torch.equal(ga[0], x.grad) and torch.equal(ga[1], lin.weight.grad) and torch.equal(ra, torch.rand(()))
    with torch.no_grad():
        torch.manual_seed(1)
        assert torch.equal(MR.recomputed(fn, x), a) and not MR.recomputed(fn, x).requires_grad


def test_feature_drop_mask_is_boolean_and_acts_as_the_float_mask():
    model = MR.Model(cfg(item_drop_prob=0.0, feature_drop=0.5), N_ITEMS, feats()).eval()
    items = torch.tensor([[5, 6, 7, 8], [3, 4, 0, 0]])
    torch.manual_seed(0)
    out, lengths, mask, _ = model.augment(items, (items > 0).sum(1))
    assert mask.dtype == torch.bool and mask.shape == (2, 4, 8) and not mask.all() and mask.any()
    assert torch.equal(out, items)
    with torch.no_grad():
        a = model.encode(items, lengths, feature_mask=mask)[0]
        b = model.encode(items, lengths, feature_mask=mask.float())[0]
        c = model.encode(items, lengths)[0]
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_a_checkpoint_resumes_with_the_other_recompute_and_ends_with_the_same_bits(tmp_path):
    """model.recompute changes how MISSRec computes, not what (ModelSpec.same_results): a run stopped after its
    first epoch with recompute on and resumed with it off ends where the uninterrupted run does."""
    from dataclasses import replace

    from mmrec_cli.training import loading, stages
    from mmrec_cli.training.loop import TrainConfig

    ds, f = tiny(), feats()
    spec_cfg = lambda recompute: loading.stage_config_class(MR.SPEC)(model=cfg(recompute=recompute), train=TrainConfig(epochs=2, batch_size=6, seed=3))  # noqa: E731

    def run(recompute, epochs, ckpt, resume):
        c = spec_cfg(recompute)
        c = replace(c, train=replace(c.train, epochs=epochs))
        r = stages.Run(checkpoint=str(ckpt), resume=resume, identity=loading.run_identity(c, ds, None))
        return stages.pretrain("missrec", ds, f, c.model, c.train, r)[0].state_dict()

    whole = run(True, 2, tmp_path / "whole.ckpt", False)
    run(True, 1, tmp_path / "part.ckpt", False)
    resumed = run(False, 2, tmp_path / "part.ckpt", True)
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
