"""The UniSRec / MISSRec / VQ-Rec import: every history holds only the last W items before its target
(RecBole's MAX_ITEM_LIST_LENGTH, 50 in UniSRec's converter), so a long user's sequence is rebuilt by
chaining the rows, and every row must be the one the rebuilt sequence gives."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLE

from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import unisrec

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def write_unisrec(folder, seqs, num_items, window=50, name="Syn", newest_first=True):
    """The files UniSRec's converter writes for these item-index sequences: users in index order, a
    user's train rows newest first (oldest first if asked), each history the last `window` items."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item2index").write_text("".join(f"i{i}\t{i}\n" for i in range(num_items)), encoding="utf-8")
    (folder / f"{name}.user2index").write_text("".join(f"u{u}\t{u}\n" for u in range(len(seqs))), encoding="utf-8")

    def row(u, s, p):
        return f"{u}\t{' '.join(map(str, s[max(0, p - window) : p]))}\t{s[p]}\n"

    train, valid, test = [HEADER], [HEADER], [HEADER]
    for u, s in enumerate(seqs):
        n = len(s)
        positions = range(n - 3, 0, -1) if newest_first else range(1, n - 2)
        train += [row(u, s, p) for p in positions]
        valid.append(row(u, s, n - 2))
        test.append(row(u, s, n - 1))
    for split, lines in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{name}.{split}.inter").write_text("".join(lines), encoding="utf-8")
    return folder


def random_sequences(lengths, num_items, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, num_items, size=n).tolist() for n in lengths]


def assert_imports_to(folder, seqs):
    ds = unisrec.import_dataset(str(folder))
    assert ds.num_users == len(seqs)
    for u, s in enumerate(seqs):
        assert ds.sequence(u).tolist() == s
        assert ds.labels(u).tolist() == [D.TRAIN] * (len(s) - 2) + [D.VALID, D.TEST]


def test_a_user_longer_than_the_window_is_rebuilt_whole(tmp_path):
    seqs = random_sequences([120, 3, 7, 51, 52], num_items=300, seed=0)
    folder = write_unisrec(tmp_path / "syn", seqs, 300)
    test_hist = (folder / "Syn.test.inter").read_text().splitlines()[1].split("\t")[1].split()
    assert len(test_hist) == 50 and test_hist != [str(i) for i in seqs[0][:-1]]  # the files really are truncated
    assert_imports_to(folder, seqs)


@pytest.mark.parametrize("newest_first", [True, False])
def test_the_window_is_read_from_the_data(tmp_path, newest_first):
    # W = 20, not 50; lengths around W + 1 (where the test history starts to be cut) and up to 200
    seqs = random_sequences([200, 3, 20, 21, 22, 23, 57, 150], num_items=40, seed=1)
    seqs.append([0, 1, 1] * 25 + [1, 0, 0, 1] + [0, 1, 1] * 3)  # the same 20-item window is followed by 0 and by 1
    folder = write_unisrec(tmp_path / "syn", seqs, 40, window=20, newest_first=newest_first)
    assert_imports_to(folder, seqs)


def corrupt(path, lineno, edit):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    user, hist, target = lines[lineno - 1].rstrip("\n").split("\t")
    user, hist, target = edit(user, hist.split(), target)
    lines[lineno - 1] = f"{user}\t{' '.join(hist)}\t{target}\n"
    path.write_text("".join(lines), encoding="utf-8")


def refusal(folder):
    with pytest.raises(MmrecError) as err:
        unisrec.import_dataset(str(folder))
    return str(err.value)


def test_a_row_that_disagrees_is_refused_with_its_line(tmp_path):
    s = random_sequences([120, 5], num_items=300, seed=3)
    train = tmp_path / "syn" / "Syn.train.inter"
    # user 0's train rows are lines 2..118, newest first: the row of item p + 1 (target s[p]) is line 119 - p

    write_unisrec(tmp_path / "syn", s, 300)
    bad = (s[0][40] + 1) % 300
    corrupt(train, 39, lambda u, h, t: (u, h[:10] + [str(bad)] + h[11:], t))  # the row of target s[80], history s[30:80]
    assert refusal(tmp_path / "syn") == (
        f"{train}:39: train row of user 0: history item 11 of 50 is {bad}, but item 41 of the user's sequence is "
        f"{s[0][40]} (the target of {train}:79); the files disagree"
    )

    write_unisrec(tmp_path / "syn", s, 300)
    test = tmp_path / "syn" / "Syn.test.inter"
    corrupt(test, 2, lambda u, h, t: (u, h[1:], t))
    assert refusal(tmp_path / "syn") == (
        f"{test}:2: test row of user 0 has a history of 49 items, but as the row of item 120 of the user's sequence it "
        "needs the last 50 (a history holds the last min(W, position) items, W = 50, the longest history in the files); "
        "the files disagree"
    )

    write_unisrec(tmp_path / "syn", s, 300)
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    train.write_text("".join(lines[:117] + lines[118:]), encoding="utf-8")  # drop the oldest row, s[0] -> s[1]
    assert refusal(tmp_path / "syn") == (
        f"{train}: user 0 has no train row for item 2 of its sequence (target {s[0][1]}), which its oldest row "
        f"({train}:117, a history of 2 items) implies; the files disagree"
    )

    write_unisrec(tmp_path / "syn", s, 300)
    corrupt(train, 50, lambda u, h, t: ("7", h, t))
    assert refusal(tmp_path / "syn") == f"{train}:50: user 7 is not in Syn.user2index (indices 0..1)"


def test_the_example_imports_to_the_same_dataset():
    # the dataset the importer produced before sequences were rebuilt from windows (each user's
    # sequence was the test row's history and target; no user of the example is longer than 51)
    assert unisrec.import_dataset(EXAMPLE).fingerprint() == "sha256:baf6b0872a54b543"


def test_a_two_item_user_is_still_refused_as_too_short(tmp_path):
    folder = write_unisrec(tmp_path / "syn", [[1, 2, 3], [4, 5]], 10)
    assert refusal(folder) == (
        f"{folder / 'Syn'}: user 'u1' has 2 interaction(s); leave-one-out needs at least 3 (train, valid, test): "
        "pass --drop-short to drop such users, or --kcore to filter"
    )
