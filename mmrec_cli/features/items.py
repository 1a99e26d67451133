"""What to encode: an items JSONL file (item_id, text, images) or a captions JSONL file (`mmrec caption`).

Items: `text` is a string (split into sentences with --per-sentence) or a list of sentences (taken as given);
`images` is a path or a list of paths. Captions: one line per image (item_id, image, words, scores); each
image's words form one "sentence" of its item, so encoding them gives MSM4SR's x^v.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmrec_cli.data import records
from mmrec_cli.errors import bad_input
from mmrec_cli.io.jsonl import read_jsonl, read_stdin

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Source:
    path: str
    kind: str  # "items" or "captions"
    item_ids: list[str]
    texts: list[str]  # the whole text of each item ("" when it has none)
    sentences: list[list[str]]
    images: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    fingerprint: str = ""  # of the whole file's bytes (standard input's too), as artifacts.fingerprint_file

    def subset(self, rows: list[int]) -> Source:
        pick = lambda xs: [xs[r] for r in rows]  # noqa: E731
        return Source(self.path, self.kind, pick(self.item_ids), pick(self.texts), pick(self.sentences), pick(self.images), pick(self.lines), self.fingerprint)


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after '.', '!' or '?' followed by white space; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def read_source(path: str) -> Source:
    """Read an items file, or a captions file (recognised by a 'words' field on its first record); '-' is
    standard input, read once into memory (the file is read twice)."""
    from mmrec_cli.io import artifacts

    data = read_stdin() if path == "-" else None
    first = next(read_jsonl(path, data), None)
    if first is None:
        raise bad_input(f"{path}: no items found; the file is empty")
    source = _read_captions(path, data) if "words" in first[1] else _read_items(path, data)
    source.fingerprint = artifacts.fingerprint_bytes(data) if data is not None else artifacts.fingerprint_file(path)
    return source


def _read_items(path: str, data: bytes | None) -> Source:
    items = list(records.read_items(path, data).values())
    sentences = [it.text if len(it.text) != 1 else split_sentences(it.text[0]) for it in items]
    texts = [" ".join(t.strip() for t in it.text) for it in items]
    return Source(path, "items", [it.item_id for it in items], texts, sentences, [it.images for it in items], [it.line for it in items])


def _read_captions(path: str, data: bytes | None) -> Source:
    groups: dict[str, tuple[int, list[str]]] = {}
    for lineno, obj in read_jsonl(path, data):
        item_id, words = obj.get("item_id"), obj.get("words")
        if item_id is None or item_id == "" or isinstance(item_id, (dict, list, bool)):
            raise bad_input(f"{path}:{lineno}: missing or invalid 'item_id'; every caption record needs one")
        if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise bad_input(f"{path}:{lineno}: 'words' must be a list of strings (a captions file from `mmrec caption`)")
        line, sents = groups.setdefault(str(item_id), (lineno, []))
        if words:
            sents.append(" ".join(words))
    ids = list(groups)
    sentences = [groups[i][1] for i in ids]
    return Source(path, "captions", ids, [" ".join(s) for s in sentences], sentences, [[] for _ in ids], [groups[i][0] for i in ids])


def match_dataset(source: Source, dataset_ids: list[str], dataset_path: str) -> tuple[Source, int]:
    """Keep the items of a dataset (in the source's order); fail when the source lacks some of them."""
    have = set(source.item_ids)
    missing = [iid for iid in dataset_ids if iid not in have]
    if missing:
        raise bad_input(
            f"{source.path}: lacks {len(missing)} of the {len(dataset_ids)} items of {dataset_path} (first: '{missing[0]}'); "
            "give the items file the dataset was prepared with"
        )
    wanted = set(dataset_ids)
    rows = [r for r, iid in enumerate(source.item_ids) if iid in wanted]
    return source.subset(rows), len(source.item_ids) - len(rows)
