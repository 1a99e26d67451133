import json

import numpy as np
import pytest
import torch
from _cli import error_line, run
from conftest import tiny_sequences

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import artifacts
from mmrec_cli.models import gru4rec, score
from mmrec_cli.training.loop import TrainConfig


def small(**kw):
    return gru4rec.Config(**{"max_len": 8, "embedding": 16, "hidden": 24, "layers": 1, **kw})


def dataset():
    return D.from_sequences(tiny_sequences(), [str(i) for i in range(20)], [str(u) for u in range(12)])


def batch(cfg=None, batch_size=64):
    return next(gru4rec.train_batches(dataset(), cfg or small(), TrainConfig(batch_size=batch_size, seed=0), 0))


def test_shapes_and_scores_of_any_items():
    torch.manual_seed(0)
    b = batch()
    m = gru4rec.Model(small(), 20)
    assert m.encode(b["items"]).shape == (*b["items"].shape, 16)
    assert m.users(b).shape == (len(b["items"]), 16)
    assert score(m, b, torch.tensor([3, 0, 19])).shape == (len(b["items"]), 3)
    assert m.gru.bias is False and m.dense.out_features == 16  # RecBole: a GRU without biases, dense back to embedding


def test_golden_loss_on_a_seeded_batch():
    torch.manual_seed(0)
    b = batch()
    assert b["items"].shape == (49, 5) and int((b["targets"] >= 0).sum()) == 49  # one target per prefix
    m = gru4rec.Model(small(dropout=0.0), 20)
    assert m.loss(b).item() == pytest.approx(2.9951670, abs=1e-5)


def test_prefix_targets_sit_at_each_rows_last_item():
    b = batch()
    last = b["lengths"] - 1
    assert torch.equal(b["targets"][torch.arange(len(last)), last], b["target"])
    assert int((b["targets"] >= 0).sum()) == len(last)


def test_causal_no_peeking_at_later_items():
    torch.manual_seed(0)
    m = gru4rec.Model(small(), 20).eval()
    x = torch.tensor([[1, 2, 3, 4]])
    y = torch.tensor([[1, 2, 9, 7]])
    assert torch.allclose(m.encode(x)[0, :2], m.encode(y)[0, :2], atol=1e-6)
    assert not torch.allclose(m.encode(x)[0, 2], m.encode(y)[0, 2], atol=1e-3)


def test_prefixes_and_windows_are_the_same_examples():
    """The GRU is causal: a loss at every position of the windows is the mean over the same (prefix -> next) pairs."""
    torch.manual_seed(0)
    m = gru4rec.Model(small(dropout=0.0), 20)
    by_prefix = m.loss(batch(small(instances="prefixes"), batch_size=1000))
    by_window = m.loss(batch(small(instances="windows"), batch_size=1000))
    assert torch.allclose(by_prefix, by_window, atol=1e-6)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    m = gru4rec.Model(small(layers=2), 20)
    m.loss(batch()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_overfits_one_batch():
    torch.manual_seed(0)
    b = batch(small(instances="windows"))
    m = gru4rec.Model(small(dropout=0.0), 20)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = m.loss(b).item()
    for _ in range(150):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    assert first > 2.5 and loss.item() < 0.2


def test_the_user_vector_is_the_output_at_the_last_item():
    torch.manual_seed(0)
    m = gru4rec.Model(small(), 20).eval()
    b = B.collate_eval([np.array([4, 2]), np.array([5, 6, 7])], [0, 1], 8)
    with torch.no_grad():
        users = m.users(b)
        # the padding after a short row changes nothing
        assert torch.allclose(users[0], m.encode(torch.tensor([[5, 3]]))[0, 1], atol=1e-6)
        assert torch.allclose(users[1], m.encode(torch.tensor([[6, 7, 8]]))[0, 2], atol=1e-6)


def test_unpack_is_pad_packed_sequence_to_the_bit_values_and_gradients():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 7, 1, 5, 7, 2])  # ragged, unsorted, the longest (7) short of total_length
    x = torch.randn(6, 9, 4)
    gru = torch.nn.GRU(4, 5, bias=False, batch_first=True)
    g = torch.randn(6, 9, 5)  # an upstream gradient that differs at every position
    grads = []
    for unpad in (lambda out: torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=9)[0],
                  lambda out: gru4rec.unpack(out, lengths, 9)):
        xi = x.clone().requires_grad_()
        out, _ = gru(torch.nn.utils.rnn.pack_padded_sequence(xi, lengths, batch_first=True, enforce_sorted=False))
        h = unpad(out)
        (h * g).sum().backward()
        grads.append((h.detach(), xi.grad))
    (h_ref, dx_ref), (h_new, dx_new) = grads
    assert torch.equal(h_new, h_ref) and torch.equal(dx_new, dx_ref)
    assert h_new[2, 1:].abs().sum() == 0 and h_new[2, 0].abs().sum() > 0  # zeros after a row's end


def test_a_gru_without_layers_is_refused():
    with pytest.raises(MmrecError) as err:
        gru4rec.Model(small(layers=0), 20)
    assert str(err.value) == "config: model.layers: 0 is out of range; use 1 or more (a GRU needs a layer)"


def test_cli_finetune_then_eval(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    model = tmp_path / "gru.safetensors"
    r = run("finetune", "gru4rec", ds_path, "-o", model, "--epochs", "2", "--batch-size", "16", "--max-len", "8",
            "--set", "model.hidden=16")
    assert r.exit_code == 0, r.output
    meta = artifacts.read_meta(model, "model")
    want = {"max_len": 8, "embedding": 64, "hidden": 16, "layers": 1, "dropout": 0.3, "instances": "prefixes"}
    assert meta["config"]["model"] == want
    out = tmp_path / "m.json"
    r = run("eval", model, ds_path, "--split", "test", "-o", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["split"] == "test" and res["metrics"]["users"] == 12 and 0 <= res["metrics"]["ndcg@10"] <= 1
    r = run("finetune", "gru4rec", ds_path, "-o", model, "--set", "model.instances=sessions")
    assert r.exit_code == 3
    assert error_line(r) == "error: config: model.instances: 'sessions' is not one of prefixes, windows"
