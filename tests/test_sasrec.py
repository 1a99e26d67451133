import torch
from conftest import tiny_sequences

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.models import sasrec, score


def small(**kw):
    return sasrec.Config(max_len=8, hidden=16, layers=2, heads=2, inner=32, **kw)


def batch():
    ds = D.from_sequences(tiny_sequences(), [str(i) for i in range(20)], [str(u) for u in range(12)])
    return next(B.train_batches(ds, max_len=8, batch_size=64, seed=0, epoch=0)), ds


def test_shapes_and_scores_of_any_items():
    torch.manual_seed(0)
    b, _ = batch()
    m = sasrec.Model(small(), 20)
    h = m.encode(b["items"])
    assert h.shape == (b["items"].shape[0], b["items"].shape[1], 16)
    assert score(m, b, torch.tensor([3, 0, 19])).shape == (b["items"].shape[0], 3)


def test_causal_no_peeking_at_later_items():
    torch.manual_seed(0)
    m = sasrec.Model(small(dropout=0.0, attn_dropout=0.0), 20).eval()
    x = torch.tensor([[1, 2, 3, 4]])
    y = torch.tensor([[1, 2, 9, 7]])
    assert torch.allclose(m.encode(x)[0, :2], m.encode(y)[0, :2], atol=1e-6)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    b, _ = batch()
    m = sasrec.Model(small(), 20)
    m.loss(b).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_overfits_one_batch():
    torch.manual_seed(0)
    b, _ = batch()
    m = sasrec.Model(small(dropout=0.0, attn_dropout=0.0), 20)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = m.loss(b).item()
    for _ in range(150):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    assert first > 2.5 and loss.item() < 0.2


def test_windows_cover_long_sequences():
    seq = list(range(25))
    ds = D.from_sequences([seq], [str(i) for i in range(25)], ["u"])
    windows, users = B.train_windows(ds, max_len=10)
    # 23 train items: windows of 11 ending at the end, stepping back by 10, each target predicted once
    assert [w.tolist()[-1] for w in windows] == [22, 12, 2]
    targets = sorted(t for w in windows for t in w[1:].tolist())
    assert targets == list(range(1, 23))


def test_users_runs_only_the_last_query_through_the_last_layer_with_the_same_result():
    import numpy as np

    from mmrec_cli.data.batches import collate_eval
    from mmrec_cli.models import sasrec

    torch.manual_seed(0)
    m = sasrec.Model(sasrec.Config(max_len=12, hidden=16, heads=4, inner=32, layers=2), 30).eval()
    rng = np.random.default_rng(0)
    batch = collate_eval([rng.integers(0, 30, size=n) for n in (1, 5, 12, 7)], [-1] * 4, 12)
    with torch.no_grad():
        full = m.encode(batch["items"])[torch.arange(4), batch["lengths"] - 1]
        assert torch.allclose(m.users(batch), full, atol=1e-6)
        m.layers = m.layers[:1]
        assert torch.allclose(m.users(batch), m.encode(batch["items"])[torch.arange(4), batch["lengths"] - 1], atol=1e-6)
        m.layers = m.layers[:0]
        assert torch.allclose(m.users(batch), m.encode(batch["items"])[torch.arange(4), batch["lengths"] - 1])
