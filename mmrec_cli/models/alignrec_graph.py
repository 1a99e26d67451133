"""Sparse graphs for the graph-based recommenders (AlignRec): user-item LightGCN and item-item kNN.

Everything here is plain torch on sparse COO tensors; no dense (users + items)^2 or items^2 matrix
is ever built, so a catalogue of 100,000 items fits in a few hundred MB.

    train_pairs(ds)                  (user, item) of every TRAIN interaction of a Dataset
    normalized_adjacency(u, i, U, I) D^-1/2 A D^-1/2 of A = [[0, R], [R^T, 0]]  ((U+I) x (U+I))
    propagate(adj, x, layers)        LightGCN: mean of x, Ax, A^2x, ..., A^L x
    knn_graph(x, k)                  top-k cosine neighbours per row, chunked, symmetric-normalised
"""

from __future__ import annotations

import numpy as np
import torch


def train_pairs(ds) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) int64 arrays of the TRAIN interactions of `ds`, duplicates removed."""
    from mmrec_cli.data.dataset import TRAIN

    lengths = np.diff(ds.offsets)
    users = np.repeat(np.arange(ds.num_users, dtype=np.int64), lengths)
    keep = ds.split == TRAIN
    codes = np.unique(users[keep] * ds.num_items + ds.items[keep])
    return codes // ds.num_items, codes % ds.num_items


def normalized_adjacency(users: torch.Tensor, items: torch.Tensor, num_users: int, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_hat, R_hat): the symmetric-normalised bipartite adjacency over users then items, and its
    user x item block R_hat[u, i] = 1 / sqrt(deg(u) deg(i)) (LightGCN's normalisation)."""
    users, items = users.long(), items.long()
    du = torch.bincount(users, minlength=num_users).float()
    di = torch.bincount(items, minlength=num_items).float()
    w = (du[users] * di[items]).rsqrt()
    r_hat = torch.sparse_coo_tensor(torch.stack([users, items]), w, (num_users, num_items), check_invariants=False).coalesce()
    rows = torch.cat([users, items + num_users])
    cols = torch.cat([items + num_users, users])
    n = num_users + num_items
    a_hat = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.cat([w, w]), (n, n), check_invariants=False).coalesce()
    return a_hat, r_hat


def propagate(adj: torch.Tensor, x: torch.Tensor, layers: int) -> torch.Tensor:
    """LightGCN aggregation: (x + A x + ... + A^L x) / (L + 1)."""
    out, h = x, x
    for _ in range(layers):
        h = torch.sparse.mm(adj, h)
        out = out + h
    return out / (layers + 1)


def knn(x: torch.Tensor, k: int, chunk_bytes: int = 1 << 26) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices), each (N, k): the k largest cosine similarities of every row of x to all rows
    (itself included), computed `chunk_bytes` of similarities at a time."""
    xn = torch.nn.functional.normalize(x.float(), dim=1)
    n = xn.shape[0]
    k = min(k, n)
    step = max(1, chunk_bytes // (4 * n))
    vals, idx = [], []
    for s in range(0, n, step):
        v, i = (xn[s : s + step] @ xn.T).topk(k, dim=1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals), torch.cat(idx)


def knn_graph(x: torch.Tensor, k: int, chunk_bytes: int = 1 << 26) -> torch.Tensor:
    """Sparse (N, N) item-item graph: row i keeps its top-k cosine neighbours with weight
    max(cos, 0), normalised as S_ij = w_ij / sqrt(d_i d_j) with d the row sums (AlignRec's "sym")."""
    vals, idx = knn(x, k, chunk_bytes)
    n = x.shape[0]
    rows = torch.arange(n, device=idx.device).repeat_interleave(idx.shape[1])
    cols = idx.reshape(-1)
    w = vals.reshape(-1).clamp_min(0)
    deg = torch.zeros(n, device=w.device).index_add_(0, rows, w)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), inv[rows] * w * inv[cols], (n, n), check_invariants=False).coalesce()
