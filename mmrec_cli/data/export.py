"""A dataset written back out, for other tools: RecBole's atomic files, or a plain interactions CSV.

    recbole   FOLDER/NAME.inter, tab-separated, `user_id:token  item_id:token  timestamp:float`, one row per
              interaction; the timestamp is the interaction's position in its user's sequence (0, 1, ...), so
              that RecBole's leave-one-out (`eval_args: {split: {LS: valid_and_test}, order: TO}`) holds out
              exactly the items mmrec's split holds out. Only leave-one-out datasets: RecBole's own splits
              would hold out other items than mmrec's ratio and time splits.
    csv       user_id,item_id,timestamp,split with the same position timestamps; `mmrec prepare` reads it back
              to the same dataset (the split column is for people and other tools).

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

FORMATS = ("recbole", "csv")
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


def _check_field(value: str, what: str, forbidden: str) -> None:
    if any(c in value for c in forbidden):
        raise bad_input(f"{what} id {value!r} holds a tab or a line break, which RecBole's files cannot hold; use --format csv")


def counts(ds: Dataset) -> tuple[int, int, int]:
    return ds.num_users, ds.num_items, int(np.asarray(ds.items).size)
