"""A dataset written back out, for other tools: RecBole's atomic files, or a plain interactions CSV.

    recbole   FOLDER/NAME.inter, tab-separated, `user_id:token  item_id:token  timestamp:float`, one row per
              interaction; the timestamp is the interaction's position in its user's sequence (0, 1, ...), so
              that RecBole's leave-one-out (`eval_args: {split: {LS: valid_and_test}, order: TO}`) holds out
              exactly the items mmrec's split holds out. Only leave-one-out datasets: RecBole's own splits
              would hold out other items than mmrec's ratio and time splits.
    csv       user_id,item_id,timestamp,split with the same position timestamps; `mmrec prepare` reads it back
              to the same dataset (the split column is for people and other tools).
    unisrec   UniSRec's downstream files FOLDER/NAME.{train,valid,test}.inter (`user_id:token
              item_id_list:token_seq  item_id:token`: a user, the last `max_len` items before a target, the
              target; users and items as 0-based indices) and NAME.user2index / NAME.item2index (`id<TAB>index`),
              the layout `io.unisrec` imports. Per user s_1..s_n: a train row for each of s_2..s_(n-2), newest
              first as UniSRec's converter writes them, the valid row for s_(n-1), the test row for s_n. Only
              leave-one-out datasets, the only split those files hold.

Users and items keep their external ids. A dataset from `mmrec subsample` has interactions that are history
only; no other tool has that notion, so it is refused.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mmrec_cli.data.dataset import HISTORY, Dataset
from mmrec_cli.errors import bad_input
from mmrec_cli.io.atomic import atomic_path

FORMATS = ("recbole", "csv", "unisrec")
SPLIT_NAMES = {0: "train", 1: "valid", 2: "test"}

# The RecBole settings under which the exported files give mmrec's split and protocol (docs/data_formats.md).
RECBOLE_CONFIG = """\
# RecBole settings for the exported dataset: mmrec's leave-one-out split and full ranking.
data_path: {folder}
dataset: {name}
load_col:
  inter: [user_id, item_id, timestamp]
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
TIME_FIELD: timestamp
MAX_ITEM_LIST_LENGTH: {max_len}
user_inter_num_interval: "[0,inf)"
item_inter_num_interval: "[0,inf)"
eval_args:
  split: {{LS: valid_and_test}}
  order: TO
  group_by: user
  mode: full
"""


def check_exportable(ds: Dataset, fmt: str, where: str) -> None:
    if (ds.split == HISTORY).any():
        raise bad_input(f"{where}: some interactions are history only (a dataset from `mmrec subsample`); export the dataset it was made from")
    if fmt == "recbole" and ds.protocol != "loo":
        raise bad_input(f"{where}: RecBole's own splits cannot reproduce a '{ds.protocol}' split; export a leave-one-out dataset (`mmrec prepare --split loo`), or use --format csv, whose split column keeps it")
    if fmt == "unisrec" and ds.protocol != "loo":
        raise bad_input(f"{where}: UniSRec's files hold a leave-one-out split only, not a '{ds.protocol}' split; export a leave-one-out dataset (`mmrec prepare --split loo`), or use --format csv, whose split column keeps it")


def rows(ds: Dataset):
    """(user id, item id, position in the user's sequence, split name) for every interaction, user by user."""
    for u, uid in enumerate(ds.user_ids):
        seq, labels = ds.sequence(u), ds.labels(u)
        for pos, (i, s) in enumerate(zip(seq.tolist(), labels.tolist())):
            yield uid, ds.item_ids[i], pos, SPLIT_NAMES[s]


def recbole_inter(ds: Dataset) -> str:
    out = ["user_id:token\titem_id:token\ttimestamp:float"]
    for uid, iid, pos, _ in rows(ds):
        _check_field(uid, "user", "\t\n")
        _check_field(iid, "item", "\t\n")
        out.append(f"{uid}\t{iid}\t{pos}")
    return "\n".join(out) + "\n"


def interactions_csv(ds: Dataset) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user_id", "item_id", "timestamp", "split"])
    w.writerows(rows(ds))
    return buf.getvalue()


def recbole_config(folder: Path, name: str, max_len: int) -> str:
    return RECBOLE_CONFIG.format(folder=folder, name=name, max_len=max_len)


UNISREC_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"
UNISREC_FILES = ("train.inter", "valid.inter", "test.inter", "user2index", "item2index")


def unisrec_lines(ds: Dataset, max_len: int) -> dict[str, object]:
    """The lines (without their line ends) of each UniSRec file, by suffix: "train.inter", ..., "item2index".
    Each value is an iterator, so that a large dataset is written without holding the files in memory."""
    for what, ids in (("user", ds.user_ids), ("item", ds.item_ids)):
        for value in ids:
            _check_field(value, what, "\t\n\r", "UniSRec's")
    return {
        "train.inter": _unisrec_rows(ds, max_len, "train"),
        "valid.inter": _unisrec_rows(ds, max_len, "valid"),
        "test.inter": _unisrec_rows(ds, max_len, "test"),
        "user2index": (f"{uid}\t{u}" for u, uid in enumerate(ds.user_ids)),
        "item2index": (f"{iid}\t{i}" for i, iid in enumerate(ds.item_ids)),
    }


def _unisrec_rows(ds: Dataset, max_len: int, split: str):
    """A user's train rows (targets s_2..s_(n-2), newest first), its valid row (s_(n-1)) or its test row (s_n),
    each `user<TAB>the last max_len items before the target<TAB>target`."""
    yield UNISREC_HEADER
    for u in range(ds.num_users):
        seq = [str(i) for i in ds.sequence(u).tolist()]
        n = len(seq)
        targets = {"train": range(n - 3, 0, -1), "valid": (n - 2,), "test": (n - 1,)}[split]
        for p in targets:
            yield f"{u}\t{' '.join(seq[max(0, p - max_len) : p])}\t{seq[p]}"


def write_unisrec(ds: Dataset, folder: Path, name: str, max_len: int) -> list[Path]:
    """FOLDER/NAME.{train,valid,test}.inter, NAME.user2index and NAME.item2index, each written atomically."""
    written = []
    for suffix, lines in unisrec_lines(ds, max_len).items():
        path = folder / f"{name}.{suffix}"
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
        written.append(path)
    return written


def _check_field(value: str, what: str, forbidden: str, files: str = "RecBole's") -> None:
    if any(c in value for c in forbidden):
        raise bad_input(f"{what} id {value!r} holds a tab or a line break, which {files} files cannot hold; use --format csv")


def counts(ds: Dataset) -> tuple[int, int, int]:
    return ds.num_users, ds.num_items, int(np.asarray(ds.items).size)
