import json

import numpy as np
import pytest
import torch
from _cli import run
from conftest import tiny_sequences

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.io import artifacts
from mmrec_cli.models import fmlprec, score
from mmrec_cli.training.loop import TrainConfig


def small(**kw):
    return fmlprec.Config(**{"max_len": 8, "hidden": 16, "layers": 2, **kw})


def dataset():
    return D.from_sequences(tiny_sequences(), [str(i) for i in range(20)], [str(u) for u in range(12)])


def batch(cfg=None, batch_size=64):
    return next(fmlprec.train_batches(dataset(), cfg or small(), TrainConfig(batch_size=batch_size, seed=0), 0))


def test_left_aligned_moves_each_row_to_the_end():
    items = torch.tensor([[3, 4, 5], [7, 0, 0], [1, 2, 0]])
    got = fmlprec.left_aligned(items, torch.tensor([3, 1, 2]), 5)
    assert got.tolist() == [[0, 0, 3, 4, 5], [0, 0, 0, 0, 7], [0, 0, 0, 1, 2]]


def test_the_filter_is_a_circular_convolution_with_the_inverse_transform_of_its_weights():
    """irfft(rfft(x) * W) over M positions = x convolved (circularly) with the kernel whose spectrum is W."""
    torch.manual_seed(0)
    cfg = small(max_len=6, hidden=3, layers=1, dropout=0.0)
    block = fmlprec.FilterBlock(cfg)
    x = torch.randn(2, 6, 3)
    W = torch.view_as_complex(block.filter)[0]  # (4, 3): 6 // 2 + 1 frequencies
    k = torch.fft.irfft(W, n=6, dim=0)  # (6, 3): the kernel (the ortho forward and inverse scalings cancel)
    want = torch.zeros(2, 6, 3)
    for t in range(6):
        for s in range(6):
            want[:, t] += x[:, s] * k[(t - s) % 6]
    f = torch.fft.irfft(torch.fft.rfft(x, dim=1, norm="ortho") * W, n=6, dim=1, norm="ortho")
    assert torch.allclose(f, want, atol=1e-6)
    with torch.no_grad():
        got = block(x)
    mid = block.norm1(x + want)
    assert torch.allclose(got, block.norm2(mid + block.ff(mid)), atol=1e-5)


def test_the_last_layer_computes_the_last_position_alone_and_exactly():
    torch.manual_seed(0)
    m = fmlprec.Model(small(max_len=7), 20).eval()  # an odd length: the transform's unpaired frequency
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        for block in m.layers:
            assert torch.allclose(block.last(x), block(x)[:, -1], atol=1e-5)


def test_shapes_and_scores_of_any_items():
    torch.manual_seed(0)
    b = batch()
    m = fmlprec.Model(small(), 20)
    assert m.users(b).shape == (len(b["items"]), 16)
    assert score(m, b, torch.tensor([3, 0, 19])).shape == (len(b["items"]), 3)
    assert [p.filter.shape for p in m.layers] == [(1, 5, 16, 2)] * 2  # max_len // 2 + 1 frequencies


def test_golden_loss_on_a_seeded_batch():
    torch.manual_seed(0)
    b = batch()
    assert b["items"].shape == (49, 5) and b["target"].shape == (49,)  # one example per prefix
    m = fmlprec.Model(small(dropout=0.0), 20)
    assert m.loss(b).item() == pytest.approx(3.013245, abs=1e-5)


def test_the_user_vector_reads_the_history_not_its_padding():
    """A history gives the same vector whatever the width of the right-padded batch it comes in."""
    torch.manual_seed(0)
    m = fmlprec.Model(small(), 20).eval()
    b = B.collate_eval([np.array([4, 2]), np.array([5, 6, 7])], [0, 1], 8)
    with torch.no_grad():
        users = m.users(b)
        alone = m.users(B.collate_eval([np.array([4, 2])], [0], 8))
    assert b["items"].shape[1] == 3
    assert torch.allclose(users[0], alone[0], atol=1e-6)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    m = fmlprec.Model(small(), 20)
    m.loss(batch()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_overfits_one_batch():
    torch.manual_seed(0)
    b = batch()
    m = fmlprec.Model(small(dropout=0.0), 20)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = m.loss(b).item()
    for _ in range(150):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    assert first > 2.5 and loss.item() < 0.5


def test_cli_finetune_then_eval(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    model = tmp_path / "fmlp.safetensors"
    r = run("finetune", "fmlprec", ds_path, "-o", model, "--epochs", "2", "--batch-size", "16", "--max-len", "8",
            "--set", "model.hidden=16")
    assert r.exit_code == 0, r.output
    meta = artifacts.read_meta(model, "model")
    assert meta["config"]["model"] == {"max_len": 8, "hidden": 16, "layers": 2, "dropout": 0.5, "init_std": 0.02}
    out = tmp_path / "m.json"
    r = run("eval", model, ds_path, "--split", "test", "-o", out)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["split"] == "test" and res["metrics"]["users"] == 12 and 0 <= res["metrics"]["ndcg@10"] <= 1
