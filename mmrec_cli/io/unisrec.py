"""Import the UniSRec / MISSRec file format (as in examples/scientific/).

    <name>.item2index   ASIN<TAB>index            (row order of the feature files)
    <name>.user2index   user<TAB>index
    <name>.{train,valid,test}.inter   user<TAB>history (space separated)<TAB>target, with a header
    <name>.text         ASIN<TAB>text, with a header
    <name>.feat*        raw little-endian float32, (num_items, dim)

The full sequence of a user is the test row's history followed by its target. The importer checks
that the valid and train rows are exactly the leave-one-out split of that sequence, so what mmrec
trains and evaluates on is what the files say.
"""

from __future__ import annotations

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


def import_dataset(source: str) -> D.Dataset:
    folder, name = locate(source)
    item_ids = read_index(folder / f"{name}.item2index")
    user_ids = read_index(folder / f"{name}.user2index")
    test = read_inter(folder / f"{name}.test.inter", len(item_ids))
    seqs: list[list[int] | None] = [None] * len(user_ids)
    for user, hist, target, lineno in test:
        if not 0 <= user < len(user_ids) or seqs[user] is not None:
            raise bad_input(f"{folder / name}.test.inter:{lineno}: user {user} is unknown or repeated")
        seqs[user] = hist + [target]
    missing = [u for u, s in enumerate(seqs) if s is None]
    if missing:
        raise bad_input(f"{folder / name}.test.inter: {len(missing)} users of user2index have no test row (first: {user_ids[missing[0]]})")
    _check_valid(folder / f"{name}.valid.inter", seqs, len(item_ids))
    _check_train(folder / f"{name}.train.inter", seqs, len(item_ids))
    D.check_lengths(seqs, user_ids, str(folder / name))
    ds = D.from_sequences(seqs, item_ids, user_ids, "loo")
    ds.meta["source_format"] = "unisrec"
    return ds


def _check_valid(path: Path, seqs: list, num_items: int) -> None:
    for user, hist, target, lineno in read_inter(path, num_items):
        if seqs[user][:-1] != hist + [target]:
            raise bad_input(f"{path}:{lineno}: valid row of user {user} is not its test history; the files disagree")


def _check_train(path: Path, seqs: list, num_items: int) -> None:
    expected = {(u, len(s) - 2 - k) for u, s in enumerate(seqs) for k in range(1, len(s) - 2)}
    for user, hist, target, lineno in read_inter(path, num_items):
        n = len(hist)
        if seqs[user][: n + 1] != hist + [target]:
            raise bad_input(f"{path}:{lineno}: train row of user {user} is not a prefix of its sequence; the files disagree")
        expected.discard((user, n))
    if expected:
        u, n = next(iter(expected))
        raise bad_input(f"{path}: train rows missing (e.g. user {u}, history of {n}); the files disagree")


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
