"""Import the UniSRec / MISSRec / VQ-Rec file format (as in examples/scientific/).

    <name>.item2index   ASIN<TAB>index            (row order of the feature files)
    <name>.user2index   user<TAB>index
    <name>.{train,valid,test}.inter   user<TAB>history (space separated)<TAB>target, with a header
    <name>.text         ASIN<TAB>text, with a header
    <name>.feat*        raw little-endian float32, (num_items, dim)

The .inter files are the leave-one-out split of each user's sequence s_1..s_n: the test row's target is
s_n, the valid row's s_(n-1), and there is one train row for each of s_2..s_(n-2). A history is only the
last min(W, p - 1) items before its target s_p: W is RecBole's MAX_ITEM_LIST_LENGTH (50 in UniSRec's
converter), read here as the longest history in the three files. So for a user of more than W + 1 items
the test row's history is not the whole sequence, and its first items survive only in the train rows.

The importer rebuilds each sequence by chaining a user's rows in time order: the history of its oldest
row (one item, s_1), then every row's target. Train rows are in time order by history length; rows of
equal length (full windows) are taken in the file's order, which UniSRec's converter writes newest first
(a user whose train rows go by increasing history length in the file is read oldest first). Every row's
history must be the last min(W, p - 1) items of the rebuilt sequence before its target, and the rows
re-derived from the rebuilt sequence must be the files' rows exactly (as a multiset per user); otherwise
the import stops at the first row that disagrees, naming file:line. So what mmrec trains and evaluates
on is what the files say.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from mmrec_cli.data import dataset as D
from mmrec_cli.errors import bad_input, not_found
from mmrec_cli.io.jsonl import read_lines


def locate(source: str) -> tuple[Path, str]:
    """A folder holding <name>.test.inter (or the path prefix <folder>/<name>) -> (folder, name)."""
    p = Path(source)
    if p.is_dir():
        found = sorted(p.glob("*.test.inter"))
        if len(found) != 1:
            raise not_found(f"{source}: expected exactly one <name>.test.inter in the folder, found {len(found)}")
        return p, found[0].name[: -len(".test.inter")]
    if (p.parent / f"{p.name}.test.inter").is_file():
        return p.parent, p.name
    raise not_found(f"{source}: no UniSRec files (<name>.test.inter) there; give the folder or the <folder>/<name> prefix")


def read_index(path: Path) -> list[str]:
    """ids in index order from an `id<TAB>index` file; indices must be 0..n-1, each once."""
    if not path.is_file():
        raise not_found(f"{path}: no such file; the UniSRec import needs it")
    pairs: dict[int, str] = {}
    for lineno, line in read_lines(str(path)):
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise bad_input(f"{path}:{lineno}: expected 'id<TAB>index'")
        idx = int(parts[1])
        if idx in pairs:
            raise bad_input(f"{path}:{lineno}: duplicate index {idx}")
        pairs[idx] = parts[0]
    if sorted(pairs) != list(range(len(pairs))):
        raise bad_input(f"{path}: indices are not 0..{len(pairs) - 1}; the file is incomplete")
    return [pairs[i] for i in range(len(pairs))]


def read_inter(path: Path, num_items: int) -> list[tuple[int, list[int], int, int]]:
    """(user, history, target, line) rows of an .inter file."""
    if not path.is_file():
        raise not_found(f"{path}: no such file; the UniSRec import needs it")
    rows = []
    for lineno, line in read_lines(str(path)):
        if lineno == 1 and line.startswith("user_id"):
            continue
        parts = line.rstrip("\r\n").split("\t")
        try:
            user, hist, target = int(parts[0]), [int(x) for x in parts[1].split()], int(parts[2])
        except (ValueError, IndexError):
            raise bad_input(f"{path}:{lineno}: expected 'user<TAB>item item ...<TAB>item' with integer indices") from None
        for i in hist + [target]:
            if not 0 <= i < num_items:
                raise bad_input(f"{path}:{lineno}: item index {i} is outside 0..{num_items - 1} of the item2index file")
        rows.append((user, hist, target, lineno))
    return rows


Row = tuple[int, list[int], int, int]  # (user, history, target, line) as read_inter returns them
SPLITS = ("train", "valid", "test")


def import_dataset(source: str) -> D.Dataset:
    folder, name = locate(source)
    item_ids = read_index(folder / f"{name}.item2index")
    user_ids = read_index(folder / f"{name}.user2index")
    paths = {split: folder / f"{name}.{split}.inter" for split in SPLITS}
    rows = {split: read_inter(paths[split], len(item_ids)) for split in ("test", "valid", "train")}
    window = max((len(hist) for split in SPLITS for _, hist, _, _ in rows[split]), default=0)
    users = _rows_by_user(rows, paths, user_ids, f"{name}.user2index")
    seqs = [_rebuild(u, users[u], paths, window) for u in range(len(user_ids))]
    D.check_lengths(seqs, user_ids, str(folder / name))
    ds = D.from_sequences(seqs, item_ids, user_ids, "loo")
    ds.meta["source_format"] = "unisrec"
    return ds


def _rows_by_user(rows: dict, paths: dict, user_ids: list[str], index_name: str) -> list[list[tuple[str, Row]]]:
    """Each user's rows in time order: its train rows oldest first, then its valid row, then its test row.

    A user's train rows are ordered by history length; rows of equal length (full windows) keep the file's
    order, which UniSRec's converter writes newest first; a user whose train rows are in the file by
    increasing history length is read oldest first instead."""
    n = len(user_ids)
    train: list[list[Row]] = [[] for _ in range(n)]
    last: dict[str, list[Row | None]] = {"valid": [None] * n, "test": [None] * n}
    for split in ("test", "valid", "train"):
        for row in rows[split]:
            user, _, _, lineno = row
            if not 0 <= user < n:
                raise bad_input(f"{paths[split]}:{lineno}: user {user} is not in {index_name} (indices 0..{n - 1})")
            if split == "train":
                train[user].append(row)
            elif last[split][user] is not None:
                raise bad_input(f"{paths[split]}:{lineno}: a second {split} row of user {user} (the first is line {last[split][user][3]})")
            else:
                last[split][user] = row
        if split != "train":
            missing = [u for u, r in enumerate(last[split]) if r is None]
            if missing:
                raise bad_input(f"{paths[split]}: {len(missing)} users of user2index have no {split} row (first: {user_ids[missing[0]]})")
    ordered = []
    for u in range(n):
        lengths = [len(hist) for _, hist, _, _ in train[u]]
        oldest_first = len(set(lengths)) > 1 and lengths == sorted(lengths)
        chrono = sorted(train[u] if oldest_first else train[u][::-1], key=lambda r: len(r[1]))
        ordered.append([("train", r) for r in chrono] + [("valid", last["valid"][u]), ("test", last["test"][u])])
    return ordered


def _rebuild(user: int, rows: list[tuple[str, Row]], paths: dict, window: int) -> list[int]:
    """The user's whole sequence: its oldest row's history, then each row's target in time order. Every row
    must hold the last min(window, position) items before its target, and the rows the rebuilt sequence
    gives (train for every item but the first and the last two, valid, test) must be the files' rows."""
    first_split, (_, first_hist, _, first_line) = rows[0]
    seq = list(first_hist)
    origin = [("in the history of", first_split, first_line)] * len(seq)  # where each item comes from
    for split, (_, hist, target, lineno) in rows:
        p = len(seq)  # the target is item p + 1 of the sequence
        want = seq[max(0, p - window) :]
        if hist != want:
            where = f"{paths[split]}:{lineno}: {split} row of user {user}"
            if len(hist) != len(want):
                raise bad_input(
                    f"{where} has a history of {len(hist)} items, but as the row of item {p + 1} of the user's sequence it needs "
                    f"the last {len(want)} (a history holds the last min(W, position) items, W = {window}, the longest history "
                    "in the files); the files disagree"
                )
            j = next(j for j, (a, b) in enumerate(zip(hist, want)) if a != b)
            q = p - len(want) + j
            how, src_split, src_line = origin[q]
            raise bad_input(
                f"{where}: history item {j + 1} of {len(hist)} is {hist[j]}, but item {q + 1} of the user's sequence is "
                f"{seq[q]} ({how} {paths[src_split]}:{src_line}); the files disagree"
            )
        seq.append(target)
        origin.append(("the target of", split, lineno))
    # the split the files imply, re-derived from the rebuilt sequence, must be the files' rows exactly
    n = len(seq)
    given = Counter((split, tuple(hist), target) for split, (_, hist, target, _) in rows)
    for p, split in [(p, "train") for p in range(1, n - 2)] + [(n - 2, "valid"), (n - 1, "test")]:
        row = (split, tuple(seq[max(0, p - window) : p]), seq[p])
        if given[row] == 0:
            raise bad_input(
                f"{paths[split]}: user {user} has no {split} row for item {p + 1} of its sequence (target {seq[p]}), which its "
                f"oldest row ({paths[first_split]}:{first_line}, a history of {len(first_hist)} items) implies; the files disagree"
            )
        given[row] -= 1
    extra = next((r for r in rows if given[(r[0], tuple(r[1][1]), r[1][2])] > 0), None)
    if extra is not None:
        split, (_, hist, target, lineno) = extra
        raise bad_input(
            f"{paths[split]}:{lineno}: {split} row of user {user} (target {target} after a history of {len(hist)} items) is not "
            "one of the rows its rebuilt sequence gives; the files disagree"
        )
    return seq


def read_text(source: str) -> dict[str, str]:
    folder, name = locate(source)
    path = folder / f"{name}.text"
    texts = {}
    for lineno, line in read_lines(str(path)):
        if lineno == 1 and line.startswith("item_id"):
            continue
        parts = line.rstrip("\r\n").split("\t", 1)
        texts[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return texts


def read_feature_file(path: Path, num_items: int) -> np.ndarray:
    """A raw float32 feature file as (num_items, dim); its size must divide evenly."""
    if not path.is_file():
        raise not_found(f"{path}: no such feature file")
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0:  # 0 divides evenly: it would make features of dimension 0
        raise bad_input(f"{path}: empty feature file; give the raw float32 features (UniSRec .feat1CLS)")
    if num_items == 0 or raw.size % num_items:
        raise bad_input(f"{path}: {raw.size} floats do not divide into {num_items} item rows; the feature file does not belong to this dataset")
    feats = raw.reshape(num_items, -1)
    if not np.isfinite(feats).all():
        bad = int(np.argwhere(~np.isfinite(feats))[0][0])
        raise bad_input(f"{path}: row {bad} holds NaN or inf; recompute the features")
    return feats
