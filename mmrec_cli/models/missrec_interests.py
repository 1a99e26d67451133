"""Interest discovery for MISSRec: DPC-KNN per sequence (batched) and k-means over a catalogue, in torch.

DPC-KNN (density peaks clustering with k nearest neighbours), for the valid tokens x_1..x_n of one
sequence, with d_ij = ||x_i - x_j||^2 / D (the squared distance per dimension, as the public code's
cdist / sqrt(D)):

    rho_i   = exp(-mean of d_ij over the k nearest other tokens j)              local density
    sigma_i = min d_ij over tokens j with rho_j > rho_i, or max_j d_ij if none    distance to denser
    centres = the K_c tokens with the highest rho_i * sigma_i (ties: lower position first)
    assign  = every token to its nearest centre (a centre to itself)

Every function takes a batch of sequences as (B, T, D) with a (B, T) validity mask and works on the
whole batch at once: no Python loop over sequences. `kmeans` is Lloyd over (N, D) tokens from k-means++ starts,
chunked so that memory stays at (chunk x clusters), seeded by a generator of its own.
"""

from __future__ import annotations

import math

import torch


def sq_dists(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """||x_i - y_j||^2 / D for (..., n, D) and (..., m, D) (y = x if None) -> (..., n, m), clamped at 0."""
    xx = (x * x).sum(-1)
    yy = xx if y is None else (y * y).sum(-1)
    d = (x @ (x if y is None else y).transpose(-1, -2)).mul_(-2).add_(xx.unsqueeze(-1)).add_(yy.unsqueeze(-2))
    return d.clamp_min_(0).div_(x.shape[-1])


def counts(ratio: float, n: torch.Tensor, lo: int = 1) -> torch.Tensor:
    """ceil(ratio * n) per row, at least `lo` and at most n (n: (B,) token counts)."""
    return torch.minimum((n.double() * ratio).ceil().long().clamp_min(lo), n.clamp_min(1))


def dpc_knn(x: torch.Tensor, mask: torch.Tensor, n_centres: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cluster the valid tokens of each row.

    x (B, T, D) tokens; mask (B, T) True for real tokens; n_centres (B,) and k (B,) per row
    (k is clipped to the number of other tokens). Returns assign (B, T): the index of each token's
    centre among the row's centres (0 on padding); centres (B, K): token positions of the centres in
    order of decreasing rho * sigma (K = max n_centres; -1 where a row has fewer); centre_mask (B, K).
    """
    B, T, _ = x.shape
    dev = x.device
    n = mask.sum(1)  # (B,)
    n_centres = torch.minimum(n_centres.to(dev), n).clamp_min(1)
    d = sq_dists(x)  # (B, T, T)
    pair = mask[:, :, None] & mask[:, None, :]
    inf = torch.tensor(math.inf, dtype=d.dtype, device=dev)
    eye = torch.eye(T, dtype=torch.bool, device=dev)
    # local density from the k nearest other tokens
    kk = torch.minimum(k.to(dev), (n - 1).clamp_min(0))  # (B,)
    kmax = max(1, min(int(kk.max()), T))
    knn = torch.where(pair & ~eye, d, inf).topk(kmax, dim=2, largest=False, sorted=True).values  # (B, T, kmax) ascending
    take = torch.arange(kmax, device=dev)[None, None, :] < kk[:, None, None]  # (B, 1, kmax)
    mean = torch.where(take, knn, 0).sum(2) / kk.clamp_min(1)[:, None]  # (B, T); 0 for a lone token
    rho = torch.exp(-mean)
    # distance to the nearest denser token, else the largest distance
    denser = pair & (rho[:, None, :] > rho[:, :, None])  # [b, i, j]: rho_j > rho_i
    to_denser = torch.where(denser, d, inf).min(2).values
    farthest = torch.where(pair, d, -inf).max(2).values
    sigma = torch.where(denser.any(2), to_denser, farthest)
    score = torch.where(mask, rho * sigma, -inf)
    order = torch.sort(score, dim=1, descending=True, stable=True).indices  # (B, T)
    K = int(n_centres.max())
    centres = order[:, :K]
    centre_mask = torch.arange(K, device=dev)[None, :] < n_centres[:, None]
    d_c = d.gather(2, centres[:, None, :].expand(B, T, K))  # (B, T, K): token -> centre
    d_c = torch.where(centre_mask[:, None, :], d_c, inf)
    assign = torch.where(mask, d_c.argmin(2), 0)
    # a centre belongs to itself (matters only for duplicate tokens)
    rows = torch.arange(B, device=dev)[:, None].expand(B, K)
    assign[rows[centre_mask], centres[centre_mask]] = torch.arange(K, device=dev).expand(B, K)[centre_mask]
    return assign, torch.where(centre_mask, centres, -1), centre_mask


def nearest(x: torch.Tensor, mask: torch.Tensor, centres: torch.Tensor, centre_mask: torch.Tensor) -> torch.Tensor:
    """Index of the nearest valid centre for every token: x (B, T, D), centres (B, K, D) -> (B, T)."""
    d = sq_dists(x, centres)
    d = torch.where(centre_mask[:, None, :], d, torch.tensor(math.inf, dtype=d.dtype, device=d.device))
    return torch.where(mask, d.argmin(2), 0)


def cluster_means(x: torch.Tensor, assign: torch.Tensor, mask: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token of each cluster: x (B, T, D), assign (B, T) in [0, K) -> (B, K, D) and (B, K) member counts."""
    B, T, D = x.shape
    w = mask.to(x.dtype)
    sums = x.new_zeros(B, K, D).scatter_add(1, assign[:, :, None].expand(B, T, D), x * w[:, :, None])
    cnt = x.new_zeros(B, K).scatter_add(1, assign, w)
    return sums / cnt.clamp_min(1)[:, :, None], cnt


def unique_rows(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of each row (ascending), left-aligned: ids (B, T) -> (B, M) and its (B, M) mask."""
    big = torch.iinfo(ids.dtype).max
    s = torch.where(mask, ids, big).sort(1).values
    first = torch.ones_like(mask)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    keep = first & (s != big)
    M = max(1, int(keep.sum(1).max()))
    slot = keep.long().cumsum(1) - 1  # target column of each kept value
    out = torch.zeros(ids.shape[0], M + 1, dtype=ids.dtype, device=ids.device)
    out.scatter_(1, torch.where(keep, slot, M), torch.where(keep, s, 0))
    out = out[:, :M]
    return out, torch.arange(M, device=ids.device)[None, :] < keep.sum(1, keepdim=True)


def kmeans(x: torch.Tensor, n_clusters: int, iters: int = 10, seed: int = 0, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means over (N, D) tokens, started by k-means++. Returns (assign (N,), centroids (C, D)).

    An empty cluster keeps its previous centroid. Stops early when no assignment changes.
    """
    C = max(1, min(n_clusters, x.shape[0]))
    cent = x[plusplus_starts(x, C, seed).to(x.device)].clone()
    assign = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    for _ in range(max(1, iters)):
        new = _nearest_chunked(x, cent, chunk)
        if torch.equal(new, assign):
            break
        assign = new
        sums = x.new_zeros(C, x.shape[1]).index_add_(0, assign, x)
        cnt = torch.bincount(assign, minlength=C).to(x.dtype)
        cent = torch.where(cnt[:, None] > 0, sums / cnt.clamp_min(1)[:, None], cent)
    return assign, cent


def plusplus_starts(x: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """Indices of n_clusters starting tokens chosen by greedy k-means++ on a seeded sample of
    max(3072, 3 x n_clusters) tokens (the initial sample of scikit-learn's MiniBatchKMeans at its default batch
    of 1024).

    Greedy k-means++ (Arthur & Vassilvitskii 2007, with the local trials of scikit-learn's `kmeans_plusplus`):
    the first start is a uniform draw; each next one is the best of 2 + ln(C) candidates drawn with probability
    proportional to the squared distance to the nearest start so far, "best" being the candidate that leaves
    the smallest total squared distance. Runs on the CPU with a generator of its own, so the starts are the
    same on every device; distances by one (trials, D) x (D, n) matmul per start, sums in float64.
    """
    g = torch.Generator().manual_seed(seed)
    pool = start_pool(x.shape[0], n_clusters, g)
    pts = x[pool.to(x.device)].detach().float().cpu().contiguous()  # (n, D)
    pts_t, sq = pts.T.contiguous(), (pts * pts).sum(1).double()  # (D, n), (n,)

    def d2(ids: torch.Tensor) -> torch.Tensor:  # (t,) -> (t, n) squared distances to every point
        return (pts[ids] @ pts_t).double().mul_(-2).add_(sq[ids, None]).add_(sq[None, :]).clamp_min_(0)

    n, trials = pts.shape[0], 2 + int(math.log(n_clusters))
    picked = torch.empty(n_clusters, dtype=torch.long)
    picked[0] = torch.randint(n, (1,), generator=g)
    closest = d2(picked[:1])[0]  # (n,) squared distance to the nearest start
    for c in range(1, n_clusters):
        cum = closest.cumsum(0)
        cand = torch.searchsorted(cum, torch.rand(trials, generator=g, dtype=torch.float64) * cum[-1]).clamp_max_(n - 1)
        dist = torch.minimum(d2(cand), closest)  # (trials, n)
        best = int(dist.sum(1).argmin())
        picked[c], closest = cand[best], dist[best]
    return pool[picked]


def start_pool(n: int, n_clusters: int, g: torch.Generator) -> torch.Tensor:
    """The tokens k-means++ starts are drawn from: max(3072, 3 x n_clusters) of the n, at random by `g` (all if fewer)."""
    size = max(3072, 3 * n_clusters)
    return torch.randperm(n, generator=g)[:size] if n > size else torch.arange(n)


def _nearest_chunked(x: torch.Tensor, cent: torch.Tensor, chunk: int) -> torch.Tensor:
    c2 = (cent * cent).sum(1)
    return torch.cat([(c2[None, :] - 2 * x[s : s + chunk] @ cent.T).argmin(1) for s in range(0, x.shape[0], chunk)])


# ----- whole datasets (`mmrec cluster`) ---------------------------------------------------------


def space_tokens(feats: dict, mods: list[str]) -> torch.Tensor:
    """The clustering space of `mmrec cluster`: L2-normalised raw features as tokens (N * M, D),
    token id = item * M + m. All modalities must share one dimension (CLIP text and image do)."""
    from mmrec_cli.errors import bad_input

    dims = {feats[m].shape[1] for m in mods}
    if len(dims) != 1:
        raise bad_input(f"clustering raw features needs one dimension for all modalities, got {sorted(dims)}; train with --set model.interests=kmeans or dpc-knn (adapter space) instead")
    return torch.nn.functional.normalize(torch.stack([feats[m].float() for m in mods], 1), dim=-1).flatten(0, 1)


def histories(ds, split: str, max_len: int) -> list:
    """Every user's items before `split`'s targets (valid: the train items; test: train and valid), last max_len."""
    from mmrec_cli.data.dataset import SPLITS, before

    level = SPLITS[split]
    return [ds.sequence(u)[before(ds.labels(u), level)][-max_len:] for u in range(ds.num_users)]


def user_interests(tokens: torch.Tensor, M: int, hists: list, ratio: float, knn_ratio: float, batch_size: int = 256, on_batch=None) -> dict:
    """Per-sequence DPC-KNN of every history over its item tokens (item-major: position, modality).

    Returns tensors: offsets (U+1) / centres (S,) the token ids of each user's interest centres in order
    of first appearance (the de-duplicated interest sequence); token_offsets (U+1) / assign (T,) the
    interest (index into the user's centres) of each history token.
    """
    U = len(hists)
    lengths = torch.tensor([len(h) * M for h in hists])
    order = torch.argsort(lengths, stable=True).tolist()  # similar lengths batch together
    centres_of: list = [None] * U
    assign_of: list = [None] * U
    ar = torch.arange(M)
    for s in range(0, U, batch_size):
        users = order[s : s + batch_size]
        T = max(1, int(lengths[users].max()))
        ids = torch.zeros(len(users), T, dtype=torch.long)
        for b, u in enumerate(users):
            h = torch.as_tensor(hists[u], dtype=torch.long)
            ids[b, : len(h) * M] = (h[:, None] * M + ar).flatten()
        mask = torch.arange(T)[None, :] < lengths[users][:, None]
        n = mask.sum(1)
        assign, centres, cmask = dpc_knn(tokens[ids], mask, counts(ratio, n), counts(knn_ratio, n))
        K = centres.shape[1]
        first = torch.full((len(users), K), T).scatter_reduce(1, assign, torch.where(mask, torch.arange(T).expand_as(mask), T), "amin")
        perm = torch.argsort(torch.where(cmask, first, T + 1), dim=1, stable=True)  # new slot -> old cluster
        rank = torch.argsort(perm, dim=1)  # old cluster -> new slot
        new_assign = rank.gather(1, assign)
        new_centres = ids.gather(1, centres.gather(1, perm).clamp_min(0))
        for b, u in enumerate(users):
            centres_of[u] = new_centres[b, : int(cmask[b].sum())]
            assign_of[u] = new_assign[b, : int(n[b])]
        if on_batch:
            on_batch(len(users))
    return {
        "offsets": _offsets([len(c) for c in centres_of]),
        "centres": torch.cat(centres_of) if U else torch.zeros(0, dtype=torch.long),
        "token_offsets": _offsets([len(a) for a in assign_of]),
        "assign": torch.cat(assign_of) if U else torch.zeros(0, dtype=torch.long),
    }


def _offsets(sizes: list) -> torch.Tensor:
    out = torch.zeros(len(sizes) + 1, dtype=torch.long)
    out[1:] = torch.tensor(sizes, dtype=torch.long).cumsum(0)
    return out
