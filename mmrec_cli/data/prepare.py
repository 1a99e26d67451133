"""From raw interactions (+ items) to a Dataset: id maps, chronological order, k-core, split."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from mmrec_cli.data import dataset as D
from mmrec_cli.data.records import Interaction, Item, missing_time
from mmrec_cli.errors import bad_input


def build(
    inters: list[Interaction],
    items: dict[str, Item] | None,
    *,
    where: str,
    items_where: str = "",
    kcore: int = 0,
    max_history: int = 0,
    protocol: str = "loo",
    seed: int = 0,
    drop_short: bool = False,
    drop_items_without_text: bool = False,
    notes: list[str] | None = None,
) -> D.Dataset:
    """`drop_items_without_text`: drop the interactions with items that have no text (no record in the items
    file, or an empty text) before anything else, saying how many in `notes`; users left too short then follow
    `drop_short`."""
    if items is not None:
        _check_known(inters, items, where, items_where)
    if drop_items_without_text:
        inters = _drop_items_without_text(inters, items, where, items_where, notes)
    if protocol == "time" and not any(it.time is not None for it in inters):
        raise bad_input(f"{where}: --split time needs timestamps, and the file has none; give its time column (--time-col), or use --split loo")
    timed = _chronological(inters, where)  # user -> [(item, time)], oldest first
    if kcore > 0:  # users that --drop-short would drop leave the k-core too, so that their items are recounted
        timed = _kcore(timed, kcore, max(kcore, 3) if drop_short else kcore)
    if max_history > 0:
        timed = {u: s[-max_history:] for u, s in timed.items()}
    if drop_short:
        timed = {u: s for u, s in timed.items() if len(s) >= 3}
    if not timed:
        given = ([f"--kcore {kcore}"] if kcore > 0 else []) + (["--drop-short"] if drop_short else []) + ([f"--max-history {max_history}"] if max_history > 0 else [])
        raise bad_input(f"{where}: no users left after {' and '.join(given) or 'reading'}; " + ("lower --kcore" if kcore > 0 else "every user has fewer than 3 interactions"))
    by_user = {u: [i for i, _ in s] for u, s in timed.items()}
    item_ids = _item_order(by_user, items)
    index = {iid: i for i, iid in enumerate(item_ids)}
    user_ids = list(by_user)
    seqs = [[index[i] for i in by_user[u]] for u in user_ids]
    D.check_lengths(seqs, user_ids, where)
    if protocol != "time":
        return D.from_sequences(seqs, item_ids, user_ids, protocol, seed)
    ds = D.from_sequences(seqs, item_ids, user_ids)
    times = [np.array([t for _, t in timed[u]], dtype=np.float64) for u in user_ids]
    ds.split, ds.protocol = D.time_labels(times, D.time_cutoffs(np.concatenate(times))), "time"
    return ds


def _check_known(inters: list[Interaction], items: dict[str, Item], where: str, items_where: str) -> None:
    for it in inters:
        if it.item not in items:
            raise bad_input(f"{where}:{it.line}: unknown item id '{it.item}' (not in {items_where}); add it to the items file or drop the interaction")


def _drop_items_without_text(inters: list[Interaction], items: dict[str, Item] | None, where: str, items_where: str, notes: list[str] | None) -> list[Interaction]:
    if items is None:
        raise bad_input(f"{where}: dropping the items without text needs their texts; give the items file (--items)")
    untexted = {it.item for it in inters if not items[it.item].text}
    kept = [it for it in inters if it.item not in untexted]
    if not kept:
        raise bad_input(f"{where}: none of its {len(inters):,} interactions is with an item that has text in {items_where}; give the items' texts, or keep them (drop --drop-items-without-text)")
    if notes is not None:
        notes.append(untexted_note(len(untexted), len(inters) - len(kept)))
    return kept


def untexted_note(n: int, m: int) -> str:
    """The line on dropping `n` items without text and their `m` interactions."""
    return f"drop-items-without-text: dropped {n:,} item{'s' if n != 1 else ''} without text and {m:,} interaction{'s' if m != 1 else ''} with {'them' if n != 1 else 'it'}"


def _chronological(inters: list[Interaction], where: str) -> dict[str, list[tuple]]:
    """Each user's items, sorted by timestamp; file order breaks ties (a stable sort). Without timestamps,
    file order; with some, every interaction needs one (a missing one is no time to sort by)."""
    timed = any(it.time is not None for it in inters)
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for it in inters:
        if timed and it.time is None:
            raise missing_time(where, it.line)
        by_user[it.user].append(it)
    if timed:
        return {u: [(r.item, r.time) for r in sorted(rows, key=lambda r: r.time)] for u, rows in by_user.items()}
    return {u: [(r.item, None) for r in rows] for u, rows in by_user.items()}


def _kcore(by_user: dict[str, list[tuple]], k: int, k_user: int) -> dict[str, list[tuple]]:
    """Drop items with fewer than k and users with fewer than k_user interactions until none is left to drop
    (each interaction an (item, time) pair)."""
    while True:
        counts = Counter(i for s in by_user.values() for i, _ in s)
        kept = {u: [r for r in s if counts[r[0]] >= k] for u, s in by_user.items()}
        kept = {u: s for u, s in kept.items() if len(s) >= k_user}
        if kept == by_user:
            return kept
        by_user = kept


def _item_order(by_user: dict[str, list[str]], items: dict[str, Item] | None) -> list[str]:
    """Items that occur, in the items file's order when there is one, else in order of first occurrence."""
    seen = dict.fromkeys(i for s in by_user.values() for i in s)
    if items is None:
        return list(seen)
    return [iid for iid in items if iid in seen]
