import math

import numpy as np
import pytest
import torch

from mmrec_cli.models import missrec_interests as CL


def reference_dpc_knn(x: np.ndarray, n_centres: int, k: int):
    """DPC-KNN of one sequence with plain loops (float64): (centres in order, assignment)."""
    n, D = x.shape
    d = [[sum((x[i, t] - x[j, t]) ** 2 for t in range(D)) / D for j in range(n)] for i in range(n)]
    k = min(k, n - 1)
    rho = []
    for i in range(n):
        others = sorted(d[i][j] for j in range(n) if j != i)
        rho.append(math.exp(-sum(others[:k]) / k) if k > 0 else 1.0)
    sigma = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i]]
        sigma.append(min(denser) if denser else max(d[i]))
    score = [rho[i] * sigma[i] for i in range(n)]
    centres = sorted(range(n), key=lambda i: (-score[i], i))[: min(n_centres, n)]
    assign = []
    for i in range(n):
        if i in centres:
            assign.append(centres.index(i))
        else:
            assign.append(min(range(len(centres)), key=lambda c: (d[i][centres[c]], c)))
    return centres, assign


@pytest.mark.parametrize("seed", range(5))
def test_dpc_knn_matches_loops_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    B, T, D = 6, 11, 5
    x = rng.normal(size=(B, T, D))
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    mask = np.arange(T)[None, :] < lengths[:, None]
    n_centres = np.maximum(1, np.ceil(0.4 * lengths)).astype(int)
    k = np.maximum(1, np.ceil(0.3 * lengths)).astype(int)
    assign, centres, cmask = CL.dpc_knn(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(n_centres), torch.from_numpy(k))
    for b in range(B):
        n = lengths[b]
        want_c, want_a = reference_dpc_knn(x[b, :n], n_centres[b], k[b])
        assert centres[b][cmask[b]].tolist() == want_c
        assert assign[b, :n].tolist() == want_a
        assert (centres[b][~cmask[b]] == -1).all()


def test_dpc_knn_lone_token_and_duplicates():
    x = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], [[1.0, 2.0], [9.0, 9.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assign, centres, cmask = CL.dpc_knn(x, mask, torch.tensor([3, 2]), torch.tensor([1, 1]))
    # row 0: the two identical tokens are each their own centre (a centre belongs to itself)
    assert sorted(centres[0].tolist()) == [0, 1, 2] and sorted(assign[0].tolist()) == [0, 1, 2]
    # row 1: one real token, one centre, padding ignored
    assert cmask[1].tolist() == [True, False, False] and centres[1, 0] == 0 and assign[1, 0] == 0


def test_cluster_means_and_nearest():
    x = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [7.0, 7.0]]])
    mask = torch.tensor([[True, True, True, False]])
    assign = torch.tensor([[0, 0, 1, 1]])
    means, cnt = CL.cluster_means(x, assign, mask, 2)
    assert means[0].tolist() == [[2.0, 0.0], [0.0, 4.0]] and cnt[0].tolist() == [2.0, 1.0]
    near = CL.nearest(x, mask, torch.tensor([[[0.0, 5.0], [2.0, 0.0]]]), torch.tensor([[True, True]]))
    assert near[0, :3].tolist() == [1, 1, 0]


def test_unique_rows():
    ids = torch.tensor([[3, 1, 3, 0, 9], [2, 2, 2, 2, 2]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    uniq, m = CL.unique_rows(ids, mask)
    assert uniq[0][m[0]].tolist() == [0, 1, 3]
    assert uniq[1][m[1]].tolist() == [2]


def test_kmeans_separates_blobs_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    assign, cent = CL.kmeans(x, 3, iters=20, seed=1)
    groups = [set(assign[i * 50 : (i + 1) * 50].tolist()) for i in range(3)]
    assert all(len(s) == 1 for s in groups) and len(set.union(*groups)) == 3
    again, _ = CL.kmeans(x, 3, iters=20, seed=1)
    assert torch.equal(assign, again)
    # centroids are the means of their members
    for c in range(3):
        assert torch.allclose(cent[c], x[assign == c].mean(0), atol=1e-5)


def test_kmeans_plusplus_seeding_gives_small_far_groups_their_own_cluster():
    # 500 tokens in one tight group and two single far tokens: random starting points are almost surely all in the
    # big group, and Lloyd then merges the two far tokens into one cluster; k-means++ (D^2 seeding) starts on them.
    g = torch.Generator().manual_seed(0)
    x = torch.cat([0.01 * torch.randn(500, 2, generator=g), torch.tensor([[100.0, 0.0], [0.0, 100.0]])])
    for seed in range(5):
        assign, _ = CL.kmeans(x, 3, iters=20, seed=seed)
        assert assign[500] != assign[501] and len(set(assign[:500].tolist())) == 1, seed


def test_plusplus_starts_never_repeat_a_point_while_an_unpicked_one_is_away():
    # 6 distinct points, each repeated 20 times: D^2 sampling gives a copy of a picked point probability 0, so the
    # 6 starts are one copy of each point, for every seed (uniform starts would repeat points almost surely).
    base = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [-3.0, 2.0], [2.0, -4.0]])
    x = base.repeat(20, 1)  # row i is point i % 6
    for seed in range(5):
        picked = CL.plusplus_starts(x, 6, seed)
        assert sorted((picked % 6).tolist()) == list(range(6)), seed
        assert torch.equal(picked, CL.plusplus_starts(x, 6, seed))
    assert len({tuple(CL.plusplus_starts(x, 6, s).tolist()) for s in range(5)}) > 1


def test_plusplus_starts_greedy_trial_takes_the_candidate_that_lowers_the_potential_most():
    # One far point and 999 copies of the origin plus tiny noise: after any first start near the origin, every
    # candidate trial that lands on the far point lowers the potential most; with 2 + ln(2) = 2 trials a draw lands
    # there with probability ~1 (it holds nearly all the D^2 mass), so the second start is the far point.
    g = torch.Generator().manual_seed(0)
    x = torch.cat([1e-3 * torch.randn(999, 3, generator=g), torch.tensor([[50.0, 0.0, 0.0]])])
    for seed in range(5):
        picked = CL.plusplus_starts(x, 2, seed)
        assert 999 in picked.tolist(), seed
