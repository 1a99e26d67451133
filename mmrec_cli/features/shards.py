"""Sharded extraction: `mmrec extract --shard I/N` encodes one block of the items, `mmrec merge` joins the blocks.

Shard I of N holds rows [I*T//N, (I+1)*T//N) of the T items to encode (the items file's order, after --dataset):
contiguous blocks, so the split depends only on the items and N, never on the machine, and the shards joined in
index order have the unsharded row order. A shard is a features artifact with one more metadata key, "shard":
{index, count, rows, items: T, item_ids: fingerprint of all T ids}, so that the merge can check that its shards
are complete and belong together. The merged file has the unsharded run's tensors and metadata (config, inputs,
encoders of shard 0); only "command" differs: the merge's, with the shards' commands under "shards".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmrec_cli.errors import USAGE, MmrecError, bad_input, mismatch

# Where files are, and how fast a machine ran: these may differ between the machines of one split.
_LOCAL_CONFIG = {"device", "threads", "batch_size", "text_model", "clip_model", "clip_pretrained", "image_root", "dataset", "merge", "imports"}
_LOCAL_ENCODER = {"model", "pretrained", "image_root", "file"}  # the weights fingerprints stay compared


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    total: int  # items of the whole extraction
    ids: str  # fingerprint of the whole extraction's item ids

    @property
    def rows(self) -> slice:
        return slice(self.index * self.total // self.count, (self.index + 1) * self.total // self.count)

    def meta(self) -> dict:
        return {"index": self.index, "count": self.count, "rows": [self.rows.start, self.rows.stop], "items": self.total, "item_ids": self.ids}


def parse(spec: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m or int(m[1]) >= int(m[2]):
        raise MmrecError(f"--shard {spec}: expected I/N with 0 <= I < N (e.g. --shard 0/4 for the first of 4 shards)", USAGE)
    return int(m[1]), int(m[2])


def select(source, spec: str | None):
    """(the shard's items, its Shard): block `spec` of `source` (an items.Source); (source, None) without a spec."""
    from mmrec_cli.io.artifacts import fingerprint_strings

    if spec is None:
        return source, None
    index, count = parse(spec)
    total = len(source.item_ids)
    if count > total:
        raise bad_input(f"--shard {spec}: {source.path} has only {total} items to encode; use at most {total} shards")
    shard = Shard(index, count, total, fingerprint_strings(source.item_ids))
    return source.subset(list(range(total))[shard.rows]), shard


def merge(paths: list[str], output: str, command: dict, note: Callable[[str], None]) -> None:
    """Join the shard artifacts `paths` (any order) into `output`, refusing incomplete or mixed sets."""
    from mmrec_cli.io import artifacts
    from mmrec_cli.io import feature_file as features

    metas = [shard_meta(p) for p in paths]
    for p, m in zip(paths[1:], metas[1:]):
        check_together(paths[0], metas[0], p, m)
    order = check_complete(paths, metas)
    parts = [features.load(paths[k])[0] for k in order]
    check_tensors(paths, order, parts)
    ids = [iid for k in order for iid in metas[k]["item_ids"]]
    first = metas[order[0]]
    if len(ids) != first["shard"]["items"] or artifacts.fingerprint_strings(ids) != first["shard"]["item_ids"]:
        raise mismatch(f"{paths[order[0]]}: the shards' item ids do not add up to the extraction's {first['shard']['items']} items; extract the shards again")
    tensors = {name: join(name, [part[name] for part in parts]) for name in parts[0]}
    command = dict(command, shards=[metas[k]["command"] for k in order])
    features.save(output, tensors, ids, command, first["config"], first["inputs"], first["encoders"])
    note(f"wrote {output}: {len(order)} shards, " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items() if not k.endswith("mask")))


def shard_meta(path: str) -> dict:
    from mmrec_cli.io import artifacts

    meta = artifacts.read_meta(path, kind="features")
    if not isinstance(meta.get("shard"), dict):
        raise mismatch(f"{path}: a whole features artifact, not a shard; merge the files written by `mmrec extract ... --shard I/N`")
    return meta


def check_together(a: str, ma: dict, b: str, mb: dict) -> None:
    """b must come from the same split, items and encoder settings as a."""
    sa, sb = ma["shard"], mb["shard"]
    if sa["count"] != sb["count"]:
        raise mismatch(f"{b}: shard {sb['index']}/{sb['count']} belongs to another split than {a} (shard {sa['index']}/{sa['count']}); merge the shards of one split")
    if ma["inputs"]["items"]["fingerprint"] != mb["inputs"]["items"]["fingerprint"]:
        raise mismatch(f"{b}: extracted from another items file than {a} (fingerprint {mb['inputs']['items']['fingerprint']}, not {ma['inputs']['items']['fingerprint']}); extract every shard from the same items file")
    if (sa["items"], sa["item_ids"]) != (sb["items"], sb["item_ids"]):
        raise mismatch(f"{b}: extracted for other items than {a} ({sb['items']} items, not {sa['items']}); use the same --dataset for every shard")
    want, got = settings(ma), settings(mb)
    differ = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if differ:
        raise mismatch(f"{b}: extracted with other encoder settings than {a} ({', '.join(differ)} differ); extract every shard with the same options and models")


def settings(meta: dict) -> dict:
    """What the vectors mean: options, encoders (weights fingerprints included) and modalities, without file locations."""
    out = {f"--{k.replace('_', '-')}": v for k, v in meta["config"].items() if k not in _LOCAL_CONFIG}
    for modality, info in meta["encoders"].items():
        out[f"{modality} encoder"] = {k: v for k, v in info.items() if k not in _LOCAL_ENCODER}
    out["modalities"] = meta["modalities"]
    return out


def check_complete(paths: list[str], metas: list[dict]) -> list[int]:
    """The positions of `paths` in shard order; every shard of the split exactly once."""
    count = metas[0]["shard"]["count"]
    seen: dict[int, int] = {}
    for k, m in enumerate(metas):
        index = m["shard"]["index"]
        if index in seen:
            raise bad_input(f"shard {index}/{count} is given twice ({paths[seen[index]]} and {paths[k]}); give each shard once")
        seen[index] = k
    missing = [i for i in range(count) if i not in seen]
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise bad_input(f"shard {names} missing: {len(seen)} of {count} shards given; extract {'it' if len(missing) == 1 else 'them'} with --shard and merge all {count}")
    return [seen[i] for i in range(count)]


def check_tensors(paths: list[str], order: list[int], parts: list[dict]) -> None:
    names = sorted(parts[0])
    for k, part in zip(order[1:], parts[1:]):
        if sorted(part) != names:
            raise mismatch(f"{paths[k]}: holds tensors {', '.join(sorted(part))}, not {', '.join(names)} like {paths[order[0]]}; extract every shard with the same options")
        for name in names:
            fixed = 2 if "_stack" in name else 1  # a stack's width S follows its shard's items
            if part[name].shape[fixed:] != parts[0][name].shape[fixed:] or part[name].dtype != parts[0][name].dtype:
                raise mismatch(f"{paths[k]}: '{name}' has shape {part[name].shape[1:]}, unlike {paths[order[0]]}; extract every shard with the same models")


def join(name: str, arrays: list[np.ndarray]) -> np.ndarray:
    """Rows of the shards in order; stacks (N, S, ...) padded with zero rows (mask 0) to the widest shard's S."""
    if "_stack" not in name:
        return np.concatenate(arrays)
    width = max(a.shape[1] for a in arrays)
    return np.concatenate([np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays])
