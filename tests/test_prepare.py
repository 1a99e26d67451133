import json

import numpy as np
import pytest
from _cli import error_line, run
from conftest import EXAMPLE

from mmrec_cli.data import dataset as D


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_unisrec_import_reproduces_the_split(tmp_path):
    out = tmp_path / "ds.safetensors"
    r = run("prepare", EXAMPLE, "-o", out, "--features-out", tmp_path / "f.safetensors")
    assert r.exit_code == 0, r.output
    ds = D.load(str(out))
    assert (ds.num_users, ds.num_items, len(ds.items)) == (2928, 1585, 19712)
    assert ds.sequence(0).tolist() == [0, 1, 2, 3, 4] and ds.labels(0).tolist() == [0, 0, 0, 1, 2]
    test_rows = [line.split("\t") for line in open(f"{EXAMPLE}/Scientific.test.inter").read().splitlines()[1:]]
    for user, hist, target in test_rows:
        seq = ds.sequence(int(user))
        assert seq[-1] == int(target) and seq[:-1].tolist() == [int(x) for x in hist.split()]
    assert int((ds.split == D.TEST).sum()) == 2928


def test_interactions_are_ordered_by_time_with_file_order_breaking_ties(tmp_path):
    inter = write(tmp_path / "i.csv", "user_id,item_id,timestamp\nu,a,3\nu,b,1\nu,c,1\nu,d,5\nv,a,1\nv,b,2\nv,c,3\n")
    items = write(tmp_path / "items.jsonl", "\n".join(json.dumps({"item_id": i, "text": i}) for i in "dcba") + "\n")
    r = run("prepare", inter, "--items", items, "-o", tmp_path / "ds.safetensors")
    assert r.exit_code == 0, r.output
    ds = D.load(str(tmp_path / "ds.safetensors"))
    assert ds.item_ids == ["d", "c", "b", "a"]  # the items file's order
    names = [ds.item_ids[i] for i in ds.sequence(0)]
    assert names == ["b", "c", "a", "d"] and ds.labels(0).tolist() == [0, 0, 1, 2]


def test_jsonl_tsv_and_kcore(tmp_path):
    rows = [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "a"), ("u3", "z"), ("u3", "b")]
    jl = write(tmp_path / "i.jsonl", "".join(json.dumps({"user_id": u, "item_id": i}) + "\n" for u, i in rows))
    tsv = write(tmp_path / "i.tsv", "user_id\titem_id\n" + "".join(f"{u}\t{i}\n" for u, i in rows))
    for src in (jl, tsv):
        out = tmp_path / f"{src.suffix}.safetensors"
        r = run("prepare", src, "-o", out, "--kcore", 2, "--drop-short")
        assert r.exit_code == 0, r.output
        ds = D.load(str(out))
        assert sorted(ds.item_ids) == ["a", "b", "c"] and ds.num_users == 2  # z has 1 interaction; u3 then has 2


def test_ratio_split_is_seeded_8_1_1(tmp_path):
    seqs = [list(range(20))] * 3
    a = D.from_sequences(seqs, [str(i) for i in range(20)], ["x", "y", "z"], "ratio", seed=1)
    b = D.from_sequences(seqs, [str(i) for i in range(20)], ["x", "y", "z"], "ratio", seed=1)
    assert np.array_equal(a.split, b.split)
    assert np.bincount(a.labels(0), minlength=3).tolist() == [16, 2, 2]


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bad.jsonl", '{"user_id": "u", "item_id": "a"}\n{"user_id": "u", \n', "bad.jsonl:2: malformed JSON"),
        ("bad.csv", "user_id,item_id\nu,a\nu,a,b\n", "bad.csv:3: expected 2 fields, got 3"),
        ("bad.csv", "user,item\nu,a\n", "bad.csv:1: header lacks 'user_id'"),
        ("bad.jsonl", '{"user_id": "u"}\n', "bad.jsonl:1: missing or invalid 'item_id'"),
        ("bad.csv", "user_id,item_id,timestamp\nu,a,yesterday\n", "bad.csv:2: timestamp 'yesterday' is not a number"),
        ("empty.csv", "", "empty.csv: no interactions found; the file is empty"),
        ("short.csv", "user_id,item_id\nu,a\nv,a\nv,b\nv,c\n", "user 'u' has 1 interaction(s); leave-one-out needs at least 3"),
        ("latin.csv", "user_id,item_id\nu,caf\xe9\n", "latin.csv:2: not valid UTF-8"),
    ],
)
def test_bad_interactions(tmp_path, name, content, expected):
    src = tmp_path / name
    src.write_bytes(content.encode("latin-1"))
    out = tmp_path / "ds.safetensors"
    r = run("prepare", src, "-o", out)
    assert r.exit_code == 3
    line = error_line(r)
    assert line.startswith("error: ") and expected in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_stdin_is_json_lines_and_a_csv_there_says_so(tmp_path):
    from _cli import cli

    from mmrec_cli.cli.app import app

    out = tmp_path / "ds.safetensors"
    jsonl = "".join(json.dumps({"user_id": "u", "item_id": i, "timestamp": t}) + "\n" for t, i in enumerate("abc"))
    r = cli.invoke(app, ["prepare", "-", "-o", str(out)], input=jsonl)
    assert r.exit_code == 0 and D.load(str(out)).num_items == 3, r.output
    out.unlink()
    r = cli.invoke(app, ["prepare", "-", "-o", str(out)], input="user_id,item_id\nu,a\n")
    assert r.exit_code == 3 and error_line(r) == (
        "error: -:1: malformed JSON (Expecting value); fix or remove the line; "
        "standard input ('-') is read as JSON lines: pass CSV/TSV as a file ending .csv/.tsv"
    )
    assert not out.exists()


def test_bad_items(tmp_path):
    inter = write(tmp_path / "i.csv", "user_id,item_id\nu,a\nu,b\nu,c\n")
    dup = write(tmp_path / "dup.jsonl", '{"item_id": "a"}\n{"item_id": "b"}\n{"item_id": "a"}\n')
    r = run("prepare", inter, "--items", dup, "-o", tmp_path / "o.safetensors")
    assert r.exit_code == 3 and "dup.jsonl:3: duplicate item_id 'a' (first on line 1)" in error_line(r)
    few = write(tmp_path / "few.jsonl", '{"item_id": "a"}\n{"item_id": "b"}\n')
    r = run("prepare", inter, "--items", few, "-o", tmp_path / "o.safetensors")
    assert r.exit_code == 3 and "i.csv:4: unknown item id 'c'" in error_line(r)


def test_missing_file_and_bad_features(tmp_path):
    r = run("prepare", tmp_path / "nope.csv", "-o", tmp_path / "o.safetensors")
    assert r.exit_code == 4 and "nope.csv: no such file" in error_line(r)
    import shutil

    src = tmp_path / "sci"
    shutil.copytree(EXAMPLE, src)
    (src / "Scientific.feat3CLS").write_bytes(np.zeros((10, 7), dtype="<f4").tobytes())
    r = run("prepare", src, "-o", tmp_path / "o.safetensors", "--features-out", tmp_path / "f.safetensors")
    assert r.exit_code == 3 and "70 floats do not divide into 1585 item rows" in error_line(r)
    assert not (tmp_path / "f.safetensors").exists() and not (tmp_path / "o.safetensors").exists()


def test_ratio_split_keeps_a_train_item_for_short_users():
    """8:1:1 promised every user a train item; a 2-item user got a valid and a test item and none to train on."""
    from mmrec_cli.data.dataset import TEST, TRAIN, VALID, ratio_labels

    labels = ratio_labels(np.array([1, 2, 3, 10]), seed=0)
    parts = np.split(labels, [1, 3, 6])
    assert [sorted(p.tolist()) for p in parts[:3]] == [[TRAIN], [TRAIN, TEST], [TRAIN, VALID, TEST]]
    assert sorted(parts[3].tolist()) == [TRAIN] * 8 + [VALID, TEST]


MISSING_TIME = "missing timestamp; give every interaction a timestamp, or drop the timestamp column to keep the file's order"


@pytest.mark.parametrize(
    "name, content, line",
    [
        ("i.csv", "user_id,item_id,timestamp\nA,i1,10\nA,i2,20\nA,i3,30\nA,i4,\n", 5),  # was the sequence i4, i1, i2, i3
        ("i.csv", "user_id,item_id,timestamp\nA,i1,\nA,i2,\nA,i3,\n", 2),  # a column of empty cells is missing too
        ("i.tsv", "user_id\titem_id\ttimestamp\nA\ti1\t10\nA\ti2\t \nA\ti3\t30\n", 3),
        ("i.jsonl", '{"user_id": "A", "item_id": "i1"}\n{"user_id": "A", "item_id": "i2", "timestamp": 5}\n{"user_id": "A", "item_id": "i3", "timestamp": 6}\n', 1),
        ("i.jsonl", '{"user_id": "A", "item_id": "i1", "timestamp": 5}\n{"user_id": "A", "item_id": "i2", "timestamp": null}\n{"user_id": "A", "item_id": "i3", "timestamp": 7}\n', 2),
    ],
)
def test_a_missing_timestamp_in_a_timed_file_is_an_error(tmp_path, name, content, line):
    src = write(tmp_path / name, content)
    out = tmp_path / "ds.safetensors"
    r = run("prepare", src, "-o", out)
    assert r.exit_code == 3, r.output
    assert error_line(r) == f"error: {src}:{line}: {MISSING_TIME}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_file_without_timestamps_keeps_its_order(tmp_path):
    for src in (write(tmp_path / "i.csv", "user_id,item_id\nA,i3\nA,i1\nA,i2\n"), write(tmp_path / "i.jsonl", "".join(json.dumps({"user_id": "A", "item_id": i}) + "\n" for i in ("i3", "i1", "i2")))):
        out = tmp_path / f"{src.suffix}.safetensors"
        r = run("prepare", src, "-o", out)
        assert r.exit_code == 0, r.output
        ds = D.load(str(out))
        assert [ds.item_ids[i] for i in ds.sequence(0)] == ["i3", "i1", "i2"]


def test_build_refuses_interactions_with_and_without_times():
    """The library entry point (mmrec_cli.api, tests) gets the same refusal as the readers give."""
    from mmrec_cli.data import prepare
    from mmrec_cli.data.records import Interaction
    from mmrec_cli.errors import MmrecError

    rows = [Interaction("A", "i1", 10.0, 2), Interaction("A", "i2", 20.0, 3), Interaction("A", "i3", 30.0, 4), Interaction("A", "i4", None, 5)]
    with pytest.raises(MmrecError) as err:
        prepare.build(rows, None, where="i.csv")
    assert str(err.value) == f"i.csv:5: {MISSING_TIME}"


def test_items_on_stdin(tmp_path):
    """`prepare inter.csv --items -` crashed (exit 1) fingerprinting '-'; the items now come from stdin, recorded
    as path '-' without a fingerprint. Stdin cannot hold both the interactions and the items."""
    from _cli import cli

    from mmrec_cli.cli.app import app
    from mmrec_cli.io import artifacts

    inter = write(tmp_path / "i.csv", "user_id,item_id,timestamp\nu,b,1\nu,a,2\nu,c,3\n")
    items = "".join(json.dumps({"item_id": i, "text": f"item {i}"}) + "\n" for i in "cab")
    out = tmp_path / "ds.safetensors"
    r = cli.invoke(app, ["prepare", str(inter), "--items", "-", "-o", str(out)], input=items)
    assert r.exit_code == 0, r.output
    ds = D.load(str(out))
    assert ds.item_ids == ["c", "a", "b"] and [ds.item_ids[i] for i in ds.sequence(0)] == ["b", "a", "c"]
    inputs = artifacts.read_meta(str(out))["inputs"]
    assert inputs["items"] == {"path": "-", "fingerprint": None} and inputs["interactions"]["fingerprint"].startswith("sha256:")
    out.unlink()
    r = cli.invoke(app, ["prepare", "-", "--items", "-", "-o", str(out)], input=items)
    assert r.exit_code == 2 and error_line(r) == "error: --items -: standard input already holds the interactions (SOURCE -); give the items as a file"
    assert r.stdout == "" and not out.exists()


def test_outputs_must_not_replace_the_unisrec_files(tmp_path):
    """Every <name>.* file of a UniSRec folder is an input: -o, --features-out and --items-out refuse them (exit 6)
    before anything is read."""
    folder = tmp_path / "sci"
    folder.mkdir()
    for suffix in ("test.inter", "text", "item2index"):
        (folder / f"x.{suffix}").write_text("not read\n")
    for option, name in (("-o", "x.item2index"), ("--features-out", "x.test.inter"), ("--items-out", "x.text")):
        args = ["-o", tmp_path / "ds.safetensors"] if option != "-o" else []
        r = run("prepare", folder, *args, option, folder / name)
        assert r.exit_code == 6 and error_line(r) == f"error: {option} {folder / name} is also the SOURCE input; write to another file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sci"] and (folder / "x.text").read_text() == "not read\n"


DROP_INTER = "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3\nu,d,4\nu,e,5\nv,a,1\nv,b,2\nv,d,3\nv,e,4\nw,a,1\nw,c,2\nw,b,3\n"
DROP_NOTE = "drop-items-without-text: dropped 2 items without text and 4 interactions with them"


def test_items_without_text_are_kept_unless_dropped(tmp_path):
    """c has no metadata record and d an empty title: kept without text by default (the items line counts c);
    --drop-items-without-text drops both and their 4 interactions, which leaves w with 2 (--drop-short)."""
    inter = write(tmp_path / "i.csv", DROP_INTER)
    meta = write(tmp_path / "meta.jsonl", "".join(json.dumps({"asin": i, "title": t}) + "\n" for i, t in (("a", "Alpha"), ("b", "Beta"), ("d", ""), ("e", "Eps"), ("z", "Zed"))))
    r = run("prepare", inter, "--items", meta, "-o", tmp_path / "all.safetensors", "--items-out", tmp_path / "all.jsonl")
    assert r.exit_code == 0, r.output
    assert f"items: 4 of 5 interacted items have a record in {meta}; 1 have none (kept, without text; first: 'c'); 1 other item there ignored" in r.stderr.splitlines()
    assert "drop-items-without-text" not in r.stderr
    ds = D.load(str(tmp_path / "all.safetensors"))
    assert ds.item_ids == ["a", "b", "d", "e", "c"] and len(ds.items) == 12
    texts = {rec["item_id"]: rec["text"] for rec in map(json.loads, (tmp_path / "all.jsonl").read_text().splitlines())}
    assert texts == {"a": "Alpha", "b": "Beta", "d": "", "e": "Eps", "c": ""}

    out = tmp_path / "ds.safetensors"
    r = run("prepare", inter, "--items", meta, "-o", out, "--drop-items-without-text")
    assert r.exit_code == 3 and error_line(r) == (
        f"error: {inter}: user 'w' has 2 interaction(s); leave-one-out needs at least 3 (train, valid, test): pass --drop-short to drop such users, or --kcore to filter"
    )
    assert not out.exists()
    r = run("prepare", inter, "--items", meta, "-o", out, "--drop-items-without-text", "--drop-short", "--items-out", tmp_path / "items.jsonl")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[-4:] == [
        f"items: 4 of 5 interacted items have a record in {meta}; 1 have none (dropped, --drop-items-without-text; first: 'c'); 1 other item there ignored",
        DROP_NOTE,
        f"wrote {out}: 2 users, 3 items, 6 interactions (loo split)",
        f"wrote {tmp_path / 'items.jsonl'}: 3 items",
    ]
    ds = D.load(str(out))
    assert ds.item_ids == ["a", "b", "e"] and ds.user_ids == ["u", "v"]
    assert [[ds.item_ids[i] for i in ds.sequence(u)] for u in range(2)] == [["a", "b", "e"], ["a", "b", "e"]]
    assert ds.labels(0).tolist() == [0, 1, 2]
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert lines == [{"item_id": "a", "text": "Alpha", "images": []}, {"item_id": "b", "text": "Beta", "images": []}, {"item_id": "e", "text": "Eps", "images": []}]


def test_drop_items_without_text_reads_empty_texts_of_an_items_file(tmp_path):
    inter = write(tmp_path / "i.csv", DROP_INTER)
    items = write(tmp_path / "items.jsonl", "".join(json.dumps(rec) + "\n" for rec in (
        {"item_id": "a", "text": "Alpha"}, {"item_id": "b", "text": ["Beta", "B"]}, {"item_id": "c", "text": "  "}, {"item_id": "d"}, {"item_id": "e", "text": "Eps"},
    )))
    out = tmp_path / "ds.safetensors"
    r = run("prepare", inter, "--items", items, "-o", out, "--drop-items-without-text", "--drop-short")
    assert r.exit_code == 0, r.output
    assert DROP_NOTE in r.stderr.splitlines()
    ds = D.load(str(out))
    assert ds.item_ids == ["a", "b", "e"] and len(ds.items) == 6
    r = run("prepare", inter, "-o", out, "--drop-items-without-text")
    assert r.exit_code == 2 and error_line(r) == f"error: --drop-items-without-text drops the items that --items gives no text; give --items for {inter}, or drop the option"
    blank = write(tmp_path / "blank.jsonl", "".join(json.dumps({"item_id": i}) + "\n" for i in "abcde"))
    r = run("prepare", inter, "--items", blank, "-o", out, "--drop-items-without-text")
    assert r.exit_code == 3 and error_line(r) == (
        f"error: {inter}: none of its 12 interactions is with an item that has text in {blank}; give the items' texts, or keep them (drop --drop-items-without-text)"
    )
