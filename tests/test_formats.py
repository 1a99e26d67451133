"""`mmrec prepare --format`: every public layout imports to exactly the dataset of the equivalent plain
user_id,item_id,timestamp CSV; `auto` says what it chose; items from titles and Amazon metadata."""

import bz2
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from _cli import run

from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import artifacts

# (user, item, seconds, rating): a user's rows out of time order, users in order of first appearance
ROWS = [
    ("7", "101", 1_300_000_030, 5.0), ("7", "102", 1_300_000_010, 3.0), ("7", "103", 1_300_000_020, 4.0), ("7", "104", 1_300_000_040, 1.0),
    ("3", "102", 1_300_000_005, 4.0), ("3", "105", 1_300_000_001, 5.0), ("3", "101", 1_300_000_009, 3.0),
    ("9", "106", 1_300_000_100, 5.0), ("9", "101", 1_300_000_300, 4.0), ("9", "103", 1_300_000_200, 5.0), ("9", "105", 1_300_000_400, 3.0), ("9", "102", 1_300_000_500, 4.0),
]
SEQUENCES = {"7": ["102", "103", "101", "104"], "3": ["105", "102", "101"], "9": ["106", "103", "101", "105", "102"]}
INSTRUMENTS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "instruments"


def plain_csv(rows=ROWS) -> str:
    return "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t, _ in rows)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def amazon2018(rows=ROWS) -> str:
    return "".join(json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": r, "reviewText": "fine", "reviewTime": "03 13, 2011"}) + "\n" for u, i, t, r in rows)


def amazon2023(rows=ROWS) -> str:
    return "".join(json.dumps({"rating": r, "title": "ok", "text": "fine", "asin": f"C{i}", "parent_asin": i, "user_id": u, "timestamp": t * 1000 + 123, "verified_purchase": True}) + "\n" for u, i, t, r in rows)


# name, file content, extra options, the line `auto` says (None: --format given in the options)
FIXTURES = [
    ("i.csv.gz", gzip.compress(plain_csv().encode()), [], "format: csv (auto: a header naming user_id and item_id)"),
    ("i.tsv.bz2", bz2.compress(plain_csv().replace(",", "\t").encode()), [], "format: csv (auto: a header naming user_id and item_id)"),
    ("users.tsv", "".join(f"{u}\t{' '.join(s)}\n" for u, s in SEQUENCES.items()), [], "format: sequences (auto: lines of 'user<TAB>item item ...')"),
    ("ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, t, r in ROWS), [], "format: recbole (auto: a header of name:type fields (RecBole .inter))"),
    ("u.data", "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, t, r in ROWS), [], "format: movielens (auto: the MovieLens file name u.data)"),
    ("ratings.dat", "".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, t, r in ROWS), [], "format: movielens (auto: the MovieLens file name ratings.dat)"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, t, r in ROWS), [], "format: movielens (auto: a MovieLens ratings.csv header (userId, movieId))"),
    ("Musical_Instruments_5.json.gz", gzip.compress(amazon2018().encode()), [], "format: amazon2018 (auto: JSON lines with reviewerID and asin)"),
    ("reviews_Musical_Instruments_5.json.gz", gzip.compress(amazon2018().encode()), ["--format", "amazon2014"], None),
    ("Musical_Instruments.jsonl.gz", gzip.compress(amazon2023().encode()), [], "format: amazon2023 (auto: JSON lines with parent_asin)"),
    # a spreadsheet export: BOM, CRLF, ';', other column names, ISO-8601 times
    ("export.csv", ("\ufeffKunde;Artikel;Zeit;Note\r\n" + "".join(f"{u};{i};{iso(t)};{r}\r\n" for u, i, t, r in ROWS)).encode("utf-8"), ["--user-col", "Kunde", "--item-col", "Artikel", "--time-col", "Zeit", "--sep", ";"], "format: csv (auto: column options given)"),
    ("plain.txt", "".join(f"{i}\t{u}\t{t}\n" for u, i, t, _ in ROWS), ["--no-header", "--user-col", "1", "--item-col", "0", "--time-col", "2"], "format: csv (auto: column options given)"),
]


def prepare(tmp_path, name, content, *options):
    src = tmp_path / name
    src.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / (name.replace(".", "_") + ".safetensors")
    r = run("prepare", src, "-o", out, *options)
    assert r.exit_code == 0, r.output
    return D.load(str(out)), r.stderr.splitlines()


def same(a: D.Dataset, b: D.Dataset) -> bool:
    return (a.fingerprint(), a.user_ids, a.item_ids) == (b.fingerprint(), b.user_ids, b.item_ids)


@pytest.fixture
def reference(tmp_path):
    ds, _ = prepare(tmp_path, "reference.csv", plain_csv())
    assert {ds.user_ids[u]: [ds.item_ids[i] for i in ds.sequence(u)] for u in range(ds.num_users)} == SEQUENCES
    return ds


@pytest.mark.parametrize("name, content, options, said", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_every_format_imports_to_the_plain_csv_dataset(tmp_path, reference, name, content, options, said):
    ds, stderr = prepare(tmp_path, name, content, *options)
    assert same(ds, reference)
    if said is not None:
        assert stderr[0] == said
    else:
        assert not stderr[0].startswith("format:")
    fmt = said.split()[1] if said else options[1]
    assert artifacts.read_meta(str(tmp_path / (name.replace(".", "_") + ".safetensors")))["config"]["format"] == fmt


def test_auto_says_what_it_chose_and_how_it_read_the_times(tmp_path):
    _, stderr = prepare(tmp_path, "Musical_Instruments.jsonl.gz", gzip.compress(amazon2023().encode()))
    assert stderr == [
        "format: amazon2023 (auto: JSON lines with parent_asin)",
        "timestamps: milliseconds since the epoch (numbers over 1e11); --time-unit s|ms overrides",
        f"wrote {tmp_path}/Musical_Instruments_jsonl_gz.safetensors: 3 users, 6 items, 12 interactions (loo split)",
    ]
    _, stderr = prepare(tmp_path, "u.data", "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, t, r in ROWS), "--time-unit", "s")
    assert stderr[:2] == ["format: movielens (auto: the MovieLens file name u.data)", "timestamps: seconds since the epoch (--time-unit s)"]
    _, stderr = prepare(tmp_path, "export.csv", "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{iso(t)}\n" for u, i, t, _ in ROWS))
    assert stderr[:2] == ["format: csv (auto: a header naming user_id and item_id)", "timestamps: ISO-8601 dates (UTC unless they name a zone)"]


def test_the_mapping_is_recorded(tmp_path):
    prepare(tmp_path, "export.csv", FIXTURES[-2][1], *FIXTURES[-2][2], "--min-rating", "3", "--rating-col", "Note")
    config = artifacts.read_meta(str(tmp_path / "export_csv.safetensors"))["config"]
    assert config["format"] == "csv" and config["mapping"] == {
        "format": "csv",
        "columns": {"user": "Kunde", "item": "Artikel", "time": "Zeit", "rating": "Note"},
        "sep": ";",
        "header": True,
        "time_unit": "auto",
        "min_rating": 3.0,
        "timestamps": True,
        "dedup": False,
    }


def test_min_rating_keeps_the_rows_at_or_above_it(tmp_path, reference):
    kept = [row for row in ROWS if row[3] >= 3]
    want, _ = prepare(tmp_path, "kept.csv", plain_csv(kept))
    ds, stderr = prepare(tmp_path, "ratings.dat", "".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, t, r in ROWS), "--min-rating", "3")
    assert same(ds, want) and "min-rating: kept 11 of 12 interactions with a rating of 3 or more" in stderr
    r = run("prepare", tmp_path / "reference.csv", "--min-rating", "3", "-o", tmp_path / "x.safetensors")
    assert r.exit_code == 3 and r.stderr.strip() == (
        f"error: {tmp_path}/reference.csv:1: no column 'rating' (--min-rating needs it; name yours with --rating-col); the header's columns are: user_id, item_id, timestamp"
    )


def test_duplicates_are_counted_and_dropped_with_dedup(tmp_path, reference):
    doubled = ROWS[:2] + [ROWS[0]] + ROWS[2:]
    ds, stderr = prepare(tmp_path, "dup.csv", plain_csv(doubled))
    assert "duplicates: 1 interaction repeats an earlier (user, item, timestamp) exactly; kept (--dedup drops them)" in stderr
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["102", "103", "101", "101", "104"]
    ds, stderr = prepare(tmp_path, "dup.csv", plain_csv(doubled), "--dedup")
    assert same(ds, reference) and "duplicates: 1 interaction repeats an earlier (user, item, timestamp) exactly; dropped (--dedup)" in stderr


def test_a_repeated_item_is_kept_as_a_later_interaction(tmp_path):
    """The existing reader keeps a user's repeated item (both interactions, in order); sequences do the same."""
    seq, stderr = prepare(tmp_path, "s.tsv", "a\tx y x z\nb\ty z y\n")
    csv_ds, _ = prepare(tmp_path, "s.csv", "user_id,item_id\na,x\na,y\na,x\na,z\nb,y\nb,z\nb,y\n")
    assert same(seq, csv_ds) and [seq.item_ids[i] for i in seq.sequence(0)] == ["x", "y", "x", "z"]
    assert "repeats: 2 users hold an item more than once (2 repeated interactions); kept, in the file's order" in stderr


def test_a_user_on_two_lines_of_a_sequence_file_is_joined_and_said(tmp_path):
    """One user a line is the format; a user's second line continues the first (its items later), in one line."""
    ds, stderr = prepare(tmp_path, "s.tsv", "a\tx y z\nb\ty z w\na\tw v\nb\tx\nc\tx y v\n")
    assert [ds.user_ids[u] for u in range(ds.num_users)] == ["a", "b", "c"]
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["x", "y", "z", "w", "v"]
    assert "users on more than one line: 2 users (the first, 'a', on lines 1 and 3); each user's lines joined in the file's order" in stderr


TITLES = "105\t Tuner \n104\tDrum stick\n106\tCapo\n999\tNot interacted\n101\tGuitar\n102\tStrap\n103\tPick\n"


def test_sequences_with_a_titles_file(tmp_path):
    (tmp_path / "items.tsv").write_text(TITLES)
    out, items_out = tmp_path / "ds.safetensors", tmp_path / "items.jsonl"
    (tmp_path / "users.tsv").write_text("".join(f"{u}\t{' '.join(s)}\n" for u, s in SEQUENCES.items()))
    r = run("prepare", tmp_path / "users.tsv", "--format", "sequences", "--items", tmp_path / "items.tsv", "-o", out, "--items-out", items_out)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        f"items: 6 of 6 interacted items have a record in {tmp_path}/items.tsv; 1 other item there ignored",
        f"wrote {out}: 3 users, 6 items, 12 interactions (loo split)",
        f"wrote {items_out}: 6 items",
    ]
    ds = D.load(str(out))
    assert ds.item_ids == ["105", "104", "106", "101", "102", "103"]  # the items file's order
    assert [json.loads(line) for line in items_out.read_text().splitlines()][:2] == [
        {"item_id": "105", "text": "Tuner", "images": []},
        {"item_id": "104", "text": "Drum stick", "images": []},
    ]
    assert artifacts.read_meta(str(out))["config"]["mapping"] == {"format": "sequences", "layout": "user<TAB>item item ... (oldest first)", "timestamps": False, "dedup": False, "items": "titles"}


META = [
    {"asin": "101", "title": "Guitar &amp; Strap", "description": ["<b>Solid</b> body.", "Maple neck."], "imageURL": ["https://m.media-amazon.com/101.jpg"], "brand": "Acme"},
    {"asin": "102", "title": "Strap", "description": "", "categories": [["Musical Instruments", "Accessories"]]},
    {"asin": "999", "title": "Not interacted"},
    {"asin": "103", "title": "Pick <i>set</i>", "description": "Twelve &quot;heavy&quot; picks.", "imageURLHighRes": ["https://m.media-amazon.com/103-hr.jpg"]},
    {"asin": "101", "title": "a repeated record (the 2018 metadata has some): the first is kept"},
]


def test_amazon_reviews_with_metadata(tmp_path):
    lines = [json.dumps(m) for m in META] + ["{'asin': '104', 'title': 'Drum', 'imUrl': 'http://ecx.images-amazon.com/104.jpg', 'categories': [['Musical Instruments', 'Drums']]}"]
    (tmp_path / "meta.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    (tmp_path / "reviews.json.gz").write_bytes(gzip.compress(amazon2018().encode()))
    out, items_out = tmp_path / "ds.safetensors", tmp_path / "items.jsonl"
    r = run("prepare", tmp_path / "reviews.json.gz", "--items", tmp_path / "meta.json.gz", "--item-text-fields", "title,description,categories", "-o", out, "--items-out", items_out)
    assert r.exit_code == 0, r.output
    assert f"items: 4 of 6 interacted items have a record in {tmp_path}/meta.json.gz; 2 have none (kept, without text; first: '105'); 1 other item there ignored" in r.stderr.splitlines()
    got = {rec["item_id"]: rec for rec in map(json.loads, items_out.read_text().splitlines())}
    assert got == {
        "101": {"item_id": "101", "text": ["Guitar & Strap", "Solid body. Maple neck."], "images": ["https://m.media-amazon.com/101.jpg"]},
        "102": {"item_id": "102", "text": ["Strap", "Musical Instruments, Accessories"], "images": []},
        "103": {"item_id": "103", "text": ["Pick set", 'Twelve "heavy" picks.'], "images": ["https://m.media-amazon.com/103-hr.jpg"]},
        "104": {"item_id": "104", "text": ["Drum", "Musical Instruments, Drums"], "images": ["http://ecx.images-amazon.com/104.jpg"]},
        "105": {"item_id": "105", "text": "", "images": []},
        "106": {"item_id": "106", "text": "", "images": []},
    }
    assert D.load(str(out)).item_ids == ["101", "102", "103", "104", "105", "106"]
    assert artifacts.read_meta(str(out))["config"]["mapping"]["item_text_fields"] == ["title", "description", "categories"]


def test_amazon2023_metadata_by_parent_asin(tmp_path):
    meta = [{"parent_asin": i, "title": f"Item {i}", "features": ["Loud", "Small"], "description": [], "images": [{"thumb": f"t{i}.jpg", "large": f"l{i}.jpg", "hi_res": None}]} for i in ("101", "102", "103", "104", "105", "106")]
    (tmp_path / "meta.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(m) + "\n" for m in meta).encode()))
    (tmp_path / "reviews.jsonl").write_text(amazon2023())
    items_out = tmp_path / "items.jsonl"
    r = run("prepare", tmp_path / "reviews.jsonl", "--items", tmp_path / "meta.jsonl.gz", "--item-text-fields", "title,feature", "-o", tmp_path / "ds.safetensors", "--items-out", items_out)
    assert r.exit_code == 0, r.output
    assert json.loads(items_out.read_text().splitlines()[0]) == {"item_id": "101", "text": ["Item 101", "Loud Small"], "images": ["l101.jpg"]}


@pytest.mark.skipif(not INSTRUMENTS.is_dir(), reason=f"{INSTRUMENTS} is absent (the shared Instruments data of the project)")
def test_instruments_imports_as_it_is(tmp_path):
    out, items_out = tmp_path / "ds.safetensors", tmp_path / "items.jsonl"
    r = run("prepare", INSTRUMENTS / "users.tsv", "--format", "sequences", "--items", INSTRUMENTS / "items.tsv", "-o", out, "--items-out", items_out)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        "repeats: 2,353 users hold an item more than once (3,377 repeated interactions); kept, in the file's order",
        f"items: 20,618 of 20,618 interacted items have a record in {INSTRUMENTS}/items.tsv; 13,303 other items there ignored",
        f"wrote {out}: 10000 users, 20618 items, 83828 interactions (loo split)",
        f"wrote {items_out}: 20618 items",
    ]
    ds = D.load(str(out))
    assert (ds.num_users, len(ds.items), ds.num_items) == (10_000, 83_828, 20_618)
    items = [json.loads(line) for line in items_out.read_text().splitlines()]
    assert len(items) == 20_618 and all(isinstance(it["text"], str) and it["text"].strip() == it["text"] != "" for it in items)
    first = INSTRUMENTS.joinpath("users.tsv").read_text().splitlines()[0].split("\t")
    assert ds.user_ids[0] == first[0] and [ds.item_ids[i] for i in ds.sequence(0)] == first[1].split()


def test_a_quoted_field_may_span_lines_and_messages_name_the_right_line(tmp_path):
    """Review exports quote texts with line breaks. They were split into records line by line ('expected 4 fields,
    got 3'), and a problem after such a record was blamed on the wrong line."""
    from mmrec_cli.data import formats

    good = tmp_path / "r.csv"
    good.write_text('user_id,item_id,timestamp,review\nu1,i1,1,"fine"\nu1,i2,2,"two\nlines, and ""quotes"""\nu1,i3,3,ok\n')
    loaded = formats.load(str(good), formats.Options())
    assert [(r.item, r.time, r.line) for r in loaded.interactions] == [("i1", 1.0, 2), ("i2", 2.0, 3), ("i3", 3.0, 5)]
    bad = tmp_path / "b.csv"
    bad.write_text('user_id,item_id,timestamp,review\nu1,i1,1,"a\nb\nc"\nu1,i2,later,ok\n')
    with pytest.raises(MmrecError) as err:
        formats.load(str(bad), formats.Options())
    assert str(err.value).startswith(f"{bad}:5: timestamp 'later' is not a number")
    open_quote = tmp_path / "o.csv"
    open_quote.write_text('user_id,item_id,timestamp\nu1,i1,1\nu1,"i2,2\nu1,i3,3\n')
    with pytest.raises(MmrecError) as err:
        formats.load(str(open_quote), formats.Options())
    assert str(err.value) == f"{open_quote}:3: a quoted field opened on this line is never closed; close its quote (\") or remove it"
