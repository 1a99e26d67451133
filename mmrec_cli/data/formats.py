"""The public interaction formats `mmrec prepare` reads, and the item files that come with them.

    csv         user_id,item_id[,timestamp] (CSV/TSV with that header, or JSON lines with those keys); other
                columns by name or 0-based position (--user-col, --item-col, --time-col, --rating-col,
                --sep, --no-header)
    sequences   user<TAB>item item ... (oldest first, no header, no timestamps): the file's order is the order
    recbole     RecBole atomic .inter files: a header of name:type fields (user_id:token, item_id:token,
                timestamp:float, rating:float); the :type suffixes are stripped
    movielens   u.data (user<TAB>item<TAB>rating<TAB>time), ratings.dat (user::item::rating::time),
                ratings.csv (userId,movieId,rating,timestamp)
    amazon2014, amazon2018   JSON lines: reviewerID, asin, unixReviewTime (seconds), overall
    amazon2023  JSON lines: user_id, parent_asin (else asin), timestamp (milliseconds), rating

Every reader returns the `records.Interaction`s that `data.prepare.build` takes; files ending .gz/.bz2 are
decompressed as they are read. Items (--items): mmrec's items JSON lines (item_id, text, images; every
interacted item must be in it), `id<TAB>title` lines, or Amazon metadata JSON lines (asin/parent_asin,
title, description, feature(s), categories/category, brand, image URLs; the 2014 release's Python-literal
lines too). From the last two, items the interactions lack are ignored, and interacted items they lack are
kept without text (counted; `prepare --drop-items-without-text` drops them, and items with an empty text).

`load` returns the interactions, the items, the mapping used (for the dataset's metadata) and the lines
to say on stderr; it prints nothing, so that a failure is one line.
"""

from __future__ import annotations

import ast
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mmrec_cli.data import records
from mmrec_cli.data.records import Columns, Interaction, Item, Times
from mmrec_cli.errors import MmrecError, bad_input, not_found, usage
from mmrec_cli.io.jsonl import read_lines, read_stdin, strip_compression

FORMATS = ("auto", "csv", "unisrec", "sequences", "recbole", "movielens", "amazon2014", "amazon2018", "amazon2023")
TIME_UNITS = ("s", "ms")
TEXT_FIELDS = ("title", "description", "feature", "features", "categories", "category", "brand")
DEFAULT_TEXT_FIELDS = ("title", "description")
_FIELD_KEYS = {  # a text field's keys in the 2014, 2018 and 2023 metadata
    "title": ("title",),
    "description": ("description",),
    "feature": ("feature", "features"),
    "features": ("features", "feature"),
    "categories": ("categories", "category"),
    "category": ("category", "categories"),
    "brand": ("brand", "store"),
}
_SNIFF_LINES = 20
_TIMED = ("csv", "recbole", "movielens", "amazon2014", "amazon2018", "amazon2023")  # formats that can carry timestamps


def format_list() -> str:
    return ", ".join(FORMATS)


@dataclass
class Options:
    """How to read an interactions file (the `prepare` options)."""

    format: str = "auto"
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    sep: str | None = None
    header: bool = True
    time_unit: str | None = None  # None: milliseconds when over 1e11, else seconds
    min_rating: float | None = None
    dedup: bool = False
    items: str | None = None
    item_text_fields: list[str] | None = None  # None: title, description
    drop_items_without_text: bool = False  # only words the items line: `data.prepare.build` drops them

    def column_options(self) -> dict[str, str]:
        """The column options given, by option name."""
        given = {"--user-col": self.user_col, "--item-col": self.item_col, "--time-col": self.time_col, "--rating-col": self.rating_col, "--sep": self.sep}
        out = {k: v for k, v in given.items() if v is not None}
        if not self.header:
            out["--no-header"] = "true"
        return out


@dataclass
class Loaded:
    format: str
    interactions: list[Interaction]
    items: dict[str, Item] | None
    mapping: dict
    notes: list[str] = field(default_factory=list)  # lines for stderr, said once the dataset is built


def check_options(opts: Options) -> None:
    """Option values any format refuses (usage errors, before any file is read)."""
    if opts.format not in FORMATS:
        raise usage(f"--format {opts.format}: must be one of {format_list()}")
    if opts.time_unit is not None and opts.time_unit not in TIME_UNITS:
        raise usage(f"--time-unit {opts.time_unit}: must be s or ms")
    if opts.sep is not None and (opts.sep == "" or "\n" in opts.sep or "\r" in opts.sep):
        raise usage("--sep: give the delimiter, e.g. --sep ';' (a tab: --sep $'\\t' or --sep '\\t')")
    if opts.min_rating is not None and opts.min_rating != opts.min_rating:
        raise usage("--min-rating: give a number, e.g. --min-rating 4")
    for name in opts.item_text_fields or ():
        if name not in TEXT_FIELDS:
            raise usage(f"--item-text-fields {name}: unknown field; choose from {', '.join(TEXT_FIELDS)}")
    if opts.item_text_fields is not None and not opts.item_text_fields:
        raise usage(f"--item-text-fields: name at least one of {', '.join(TEXT_FIELDS)}")


def resolve(source: str, opts: Options) -> tuple[str, str | None]:
    """The format to read `source` as, and why when `auto` chose it (None when --format named it)."""
    if opts.format != "auto":
        return opts.format, None
    return sniff(source, bool(opts.column_options()))


def check_applies(fmt: str, opts: Options) -> None:
    """Refuse options the format has no use for (usage errors)."""
    fixed = {"unisrec": "a UniSRec folder", "sequences": "'user<TAB>item item ...' lines", "movielens": "the MovieLens layouts"}
    if fmt in fixed:
        for option in opts.column_options():
            raise usage(f"{option} does not apply to --format {fmt} ({fixed[fmt]} are read as they are); use --format csv to name the columns")
    if fmt.startswith("amazon"):
        for option in ("--sep", "--no-header"):
            if option in opts.column_options():
                raise usage(f"{option} does not apply to --format {fmt} (JSON lines); name other keys with --user-col, --item-col, --time-col")
    if fmt == "recbole" and not opts.header:
        raise usage("--no-header does not apply to --format recbole (an .inter file starts with its name:type header)")
    untimed = {"unisrec": "a UniSRec folder", "sequences": "'user<TAB>item item ...' lines"}
    if fmt in untimed:
        for option, given in (("--min-rating", opts.min_rating is not None), ("--time-unit", opts.time_unit is not None), ("--dedup", opts.dedup)):
            if given:
                what = "ratings" if option == "--min-rating" else "timestamps"
                raise usage(f"{option}: {untimed[fmt]} hold no {what}; drop {option}")


# ---- auto --------------------------------------------------------------------------------------------------


def sniff(source: str, columns_given: bool = False) -> tuple[str, str]:
    """(format, why) from the path and the first lines; refuses (one line listing the formats) when it
    cannot tell. A file mmrec read before this option existed (.csv/.tsv, JSON lines) is still `csv`."""
    if source == "-":
        return "csv", "standard input is read as JSON lines"
    p = Path(source)
    if p.is_dir() or (p.parent / f"{p.name}.test.inter").is_file():
        return "unisrec", "a UniSRec folder (<name>.test.inter)"
    if not p.is_file():
        raise not_found(f"{source}: no such file; check the path")
    name = strip_compression(source).lower()
    if name in ("u.data", "ratings.dat"):
        return ("csv", "column options given") if columns_given else ("movielens", f"the MovieLens file name {name}")
    lines = []
    for _, line in read_lines(source):
        lines.append(line.rstrip("\r\n"))
        if len(lines) == _SNIFF_LINES:
            break
    if not lines:
        raise bad_input(f"{source}: no interactions found; the file is empty")
    first = lines[0]
    if first.lstrip().startswith("{"):
        try:
            obj = _loose_json(source, 1, first)
        except MmrecError:
            return "csv", "JSON lines"  # the reader names the line
        if "reviewerID" in obj and "asin" in obj:
            return "amazon2018", "JSON lines with reviewerID and asin"
        if "parent_asin" in obj:
            return "amazon2023", "JSON lines with parent_asin"
        return "csv", "JSON lines" + (" with user_id and item_id" if "user_id" in obj and "item_id" in obj else "")
    if "item_id_list:" in first:
        raise bad_input(f"{source}: one file of a UniSRec dataset (a history column, item_id_list); give its folder or the <folder>/<name> prefix")
    if re.search(r"\S:(token|float)\b", first):
        return "recbole", "a header of name:type fields (RecBole .inter)"
    for sep in (",", "\t", ";", "|"):
        fields = [f.strip().strip('"') for f in first.split(sep)]
        if "user_id" in fields and "item_id" in fields:
            return "csv", "a header naming user_id and item_id"
        if fields[:2] == ["userId", "movieId"]:
            return ("csv", "column options given") if columns_given else ("movielens", "a MovieLens ratings.csv header (userId, movieId)")
    if columns_given:
        return "csv", "column options given"
    tabbed = [line.split("\t") for line in lines]
    if all(len(f) == 2 and f[0].strip() and f[1].strip() for f in tabbed) and any(len(f[1].split()) > 1 for f in tabbed):
        return "sequences", "lines of 'user<TAB>item item ...'"
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix in (".csv", ".tsv"):
        return "csv", f"the extension {suffix}"
    shown = first if len(first) <= 60 else first[:57] + "..."
    raise bad_input(
        f"{source}: cannot tell the format from its name and first line ({shown!r}); give --format "
        f"({', '.join(FORMATS[1:])}), or name the columns with --user-col/--item-col"
    )


# ---- interactions ------------------------------------------------------------------------------------------


def load(source: str, opts: Options) -> Loaded:
    """Read `source` (and `opts.items`) as `opts.format` says, `auto` sniffing it."""
    fmt, columns, notes = plan(source, opts)
    times = Times(opts.time_unit)
    if fmt == "sequences":
        inters = read_sequences(source, notes)
    elif fmt.startswith("amazon"):
        inters = records.from_rows(source, records.json_rows(source, columns, _loose_jsonl(source)), columns, times)
    else:
        inters = records.read_interactions(source, columns, times)
    if times.describe():
        notes.append(times.describe())
    if opts.min_rating is not None:
        inters = _min_rating(source, inters, opts.min_rating, notes)
    inters = _duplicates(source, inters, opts.dedup, notes)
    items, items_kind = None, None
    if opts.items:
        interacted = lambda: dict.fromkeys(it.item for it in inters)
        items, items_kind = read_item_file(opts.items, source, interacted, opts.item_text_fields, notes, items_fate(opts))
    return Loaded(fmt, inters, items, mapping(source, fmt, columns, opts, inters[0].time is not None, items_kind), notes)


def plan(source: str, opts: Options) -> tuple[str, Columns | None, list[str]]:
    """(format, columns, notes): the format to read `source` as (`auto` sniffing it), the columns of its records
    (None for `sequences`), and the line saying what `auto` chose. Usage errors for options the format refuses."""
    check_options(opts)
    fmt, why = resolve(source, opts)
    if fmt == "interactions":  # the name of `csv` before there were other formats
        fmt = "csv"
    check_applies(fmt, opts)
    notes = [f"format: {fmt} (auto: {why})"] if why else []
    return fmt, None if fmt == "sequences" else _columns(source, fmt, opts), notes


def items_fate(opts: Options) -> str:
    """What becomes of the interacted items without a record in --items, as the items line says it."""
    return "dropped, --drop-items-without-text" if opts.drop_items_without_text else "kept, without text"


def mapping(source: str, fmt: str, columns: Columns | None, opts: Options, timed: bool, items_kind: str | None) -> dict:
    """How the interactions were read, for the dataset's metadata. `timed`: whether they hold timestamps."""
    out: dict = {"format": fmt}
    if columns is None:
        out["layout"] = "user<TAB>item item ... (oldest first)"
    else:
        out["columns"] = columns.record()
        out["sep"] = records.delimiter(source, columns.sep) if not fmt.startswith("amazon") else None
        out["header"] = columns.header
        out["time_unit"] = opts.time_unit or "auto"
        out["min_rating"] = opts.min_rating
    out["timestamps"] = timed
    out["dedup"] = opts.dedup
    if items_kind:
        out["items"] = items_kind
        if items_kind == "amazon-metadata":
            out["item_text_fields"] = list(opts.item_text_fields or DEFAULT_TEXT_FIELDS)
    return out


def _columns(source: str, fmt: str, opts: Options) -> Columns:
    """The columns of `fmt`, with the options' overrides (recorded in `given`, to word the errors)."""
    rating_needed = opts.min_rating is not None
    if fmt == "movielens":
        return _movielens_columns(source, rating_needed)
    defaults = {
        "csv": ("user_id", "item_id", "timestamp", "rating"),
        "recbole": ("user_id", "item_id", "timestamp", "rating"),
        "amazon2014": ("reviewerID", "asin", "unixReviewTime", "overall"),
        "amazon2018": ("reviewerID", "asin", "unixReviewTime", "overall"),
        "amazon2023": ("user_id", ("parent_asin", "asin"), "timestamp", "rating"),
    }[fmt]
    if fmt == "csv" and not opts.header:  # no names to look for: the first two fields, no timestamp unless named
        defaults = ("0", "1", None, None)
    given = {}
    keys = []
    for role, option, value, default in zip(records.ROLES, ("--user-col", "--item-col", "--time-col", "--rating-col"), (opts.user_col, opts.item_col, opts.time_col, opts.rating_col), defaults):
        if value is not None:
            given[role] = option
        keys.append(value if value is not None else default)
    if rating_needed:
        if keys[3] is None:
            raise usage("--min-rating: a file without a header (--no-header) needs --rating-col, the rating's 0-based position")
        given.setdefault("rating", "--min-rating needs it; name yours with --rating-col")
    else:
        keys[3] = None
    sep = opts.sep.replace("\\t", "\t") if opts.sep is not None else ("\t" if fmt == "recbole" else None)
    return Columns(*keys, sep=sep, header=opts.header, typed=fmt == "recbole", given=given)


def _movielens_columns(source: str, rating_needed: bool) -> Columns:
    """u.data (tab), ratings.dat ('::') or ratings.csv (a userId,movieId,rating,timestamp header)."""
    first = next((line for _, line in read_lines(source)), "") if source != "-" else ""
    rating = 2 if rating_needed else None
    if "::" in first:
        return Columns(0, 1, 3, rating, sep="::", header=False)
    if first.startswith("userId"):
        return Columns("userId", "movieId", "timestamp", "rating" if rating_needed else None, sep=",", header=True)
    if len(first.split("\t")) != 4:
        raise bad_input(f"{source}:1: not a MovieLens ratings file; expected u.data (user<TAB>item<TAB>rating<TAB>time), ratings.dat (user::item::rating::time) or ratings.csv (userId,movieId,rating,timestamp)")
    return Columns(0, 1, 3, rating, sep="\t", header=False)


def read_sequences(path: str, notes: list[str]) -> list[Interaction]:
    """One user a line: `user<TAB>item item ...` (a line without a tab: `user item item ...`), oldest first. A user's
    later line continues its sequence (said in one line of `notes`)."""
    out: list[Interaction] = []
    first_line: dict[str, int] = {}  # user -> the line it first appears on
    again: dict[str, int] = {}  # user -> the first line that repeats it
    for lineno, line in read_lines(path):
        text = line.rstrip("\r\n")
        user, _, rest = text.partition("\t") if "\t" in text else text.strip().partition(" ")
        user, items = user.strip(), rest.split()
        if not user or not items:
            raise bad_input(f"{path}:{lineno}: expected 'user<TAB>item item ...' (a user, a tab, then the user's items oldest first, separated by spaces)")
        if first_line.setdefault(user, lineno) != lineno:
            again.setdefault(user, lineno)
        out.extend(Interaction(user, item, None, lineno) for item in items)
    if not out:
        raise bad_input(f"{path}: no interactions found; the file is empty")
    if again:
        user = next(iter(again))
        notes.append(f"users on more than one line: {len(again):,} user{'s' if len(again) > 1 else ''} (the first, '{user}', on lines {first_line[user]} "
                     f"and {again[user]}); each user's lines joined in the file's order")
    return out


def _loose_json(path: str, lineno: int, line: str) -> dict:
    """A JSON object, or a Python dict literal (the 2014 Amazon metadata), read without eval."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        try:
            obj = ast.literal_eval(line.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise bad_input(f"{path}:{lineno}: malformed JSON; fix or remove the line") from None
    if not isinstance(obj, dict):
        raise bad_input(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
    return obj


def _loose_jsonl(path: str):
    for lineno, line in read_lines(path):
        yield lineno, _loose_json(path, lineno, line)


def _min_rating(source: str, inters: list[Interaction], threshold: float, notes: list[str]) -> list[Interaction]:
    for it in inters:
        if it.rating is None:
            raise bad_input(f"{source}:{it.line}: missing rating; --min-rating needs a rating on every record")
    kept = [it for it in inters if it.rating >= threshold]
    if not kept:
        lo, hi = min(it.rating for it in inters), max(it.rating for it in inters)
        raise bad_input(f"{source}: no interaction has a rating of {threshold:g} or more (ratings are {lo:g}..{hi:g}); lower --min-rating")
    notes.append(min_rating_note(len(kept), len(inters), threshold))
    return kept


def min_rating_note(kept: int, total: int, threshold: float) -> str:
    return f"min-rating: kept {kept:,} of {total:,} interactions with a rating of {threshold:g} or more"


def _duplicates(source: str, inters: list[Interaction], dedup: bool, notes: list[str]) -> list[Interaction]:
    """Count exact (user, item, timestamp) repeats, and drop them with --dedup. Without timestamps no row is an
    exact repeat (the order is the time): a user's repeated item is a later interaction, counted and kept."""
    timed = inters[0].time is not None
    if not timed:
        if dedup:
            raise usage(f"--dedup: {source} has no timestamps, so no interaction repeats another exactly (a repeated item is a later interaction); drop --dedup")
        by_user: dict[str, list[str]] = {}
        for it in inters:
            by_user.setdefault(it.user, []).append(it.item)
        users = sum(1 for s in by_user.values() if len(set(s)) < len(s))
        if users:
            notes.append(repeats_note(users, sum(len(s) - len(set(s)) for s in by_user.values())))
        return inters
    seen: set = set()
    kept = []
    for it in inters:
        key = (it.user, it.item, it.time)
        if key not in seen:
            seen.add(key)
            kept.append(it)
    n = len(inters) - len(kept)
    if n:
        notes.append(duplicates_note(n, dedup))
    return kept if dedup else inters


def repeats_note(users: int, extra: int) -> str:
    """The line on users holding an item more than once (no timestamps: later interactions, kept)."""
    return f"repeats: {users:,} users hold an item more than once ({extra:,} repeated interactions); kept, in the file's order"


def duplicates_note(n: int, dedup: bool) -> str:
    """The line on `n` rows repeating an earlier (user, item, timestamp) exactly."""
    what = "1 interaction repeats" if n == 1 else f"{n:,} interactions repeat"
    return f"duplicates: {what} an earlier (user, item, timestamp) exactly; " + ("dropped (--dedup)" if dedup else "kept (--dedup drops them)")


# ---- items -------------------------------------------------------------------------------------------------


def read_item_file(path: str, source: str, interacted: Callable[[], dict[str, None]], text_fields: list[str] | None, notes: list[str], fate: str = "kept, without text") -> tuple[dict[str, Item], str]:
    """(items by id, kind) from --items: mmrec's items JSON lines (kind "items"), `id<TAB>title` lines
    ("titles") or Amazon metadata ("amazon-metadata"), told apart by the first line. `interacted`: the interacted
    item ids in order of first interaction, asked for only by the last two (which keep those items); `fate`: what
    becomes of the interacted items without a record, as the items line says it."""
    data = read_stdin() if path == "-" else None
    first = next(read_lines(path, data), None)
    if first is None:
        raise bad_input(f"{path}: no items found; the file is empty")
    lineno, line = first
    obj = _loose_json(path, lineno, line) if line.lstrip().startswith("{") else None
    if obj is not None and "item_id" in obj:
        if text_fields is not None:
            raise usage(f"--item-text-fields is for Amazon metadata; {path} is an items file (item_id, text, images), read as it is")
        return records.read_items(path, data), "items"
    if obj is not None and ("asin" in obj or "parent_asin" in obj):
        wanted = interacted()
        found, total = _amazon_metadata(path, data, wanted, list(text_fields or DEFAULT_TEXT_FIELDS))
        return _complete(path, source, wanted, found, total, notes, fate), "amazon-metadata"
    if obj is None and "\t" in line:
        if text_fields is not None:
            raise usage(f"--item-text-fields is for Amazon metadata; {path} holds 'id<TAB>title' lines")
        wanted = interacted()
        found, total = _titles(path, data, wanted)
        return _complete(path, source, wanted, found, total, notes, fate), "titles"
    raise bad_input(
        f"{path}:{lineno}: cannot tell the items format; expected items JSON lines (item_id, text, images), "
        "Amazon metadata JSON lines (asin or parent_asin, title, ...) or 'id<TAB>title' lines"
    )


def _titles(path: str, data: bytes | None, wanted: dict) -> tuple[dict[str, Item], int]:
    found: dict[str, Item] = {}
    ids: set[str] = set()
    for lineno, line in read_lines(path, data):
        item_id, tab, title = line.rstrip("\r\n").partition("\t")
        item_id = item_id.strip()
        if not tab or not item_id:
            raise bad_input(f"{path}:{lineno}: expected 'id<TAB>title'")
        ids.add(item_id)
        if item_id in wanted and item_id not in found:
            title = title.strip()
            found[item_id] = Item(item_id, [title] if title else [], [], lineno)
    return found, len(ids)


def _amazon_metadata(path: str, data: bytes | None, wanted: dict, text_fields: list[str]) -> tuple[dict[str, Item], int]:
    found: dict[str, Item] = {}
    ids: set[str] = set()
    for lineno, line in read_lines(path, data):
        obj = _loose_json(path, lineno, line)
        item_id = obj.get("parent_asin") or obj.get("asin")
        if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or item_id == "":
            raise bad_input(f"{path}:{lineno}: missing or invalid 'asin' (or 'parent_asin'); every metadata record needs one")
        item_id = str(item_id)
        ids.add(item_id)
        if item_id not in wanted and obj.get("asin") is not None and str(obj["asin"]) in wanted:
            item_id = str(obj["asin"])  # interactions by asin, metadata holding both
        if item_id in wanted and item_id not in found:  # the 2018 metadata repeats some records: the first is kept
            text = [s for s in (_field_text(obj, name) for name in text_fields) if s]
            found[item_id] = Item(item_id, text, _image_urls(obj), lineno)
    return found, len(ids)


def _complete(path: str, source: str, wanted: dict, found: dict[str, Item], total: int, notes: list[str], fate: str = "kept, without text") -> dict[str, Item]:
    """The items found, in the file's order, then the interacted items it lacks (without text), in order of
    first interaction; none in common is an error (the metadata of another dataset)."""
    if not found:
        first = next(iter(wanted))
        raise bad_input(f"{path}: none of its {total:,} items occur in {source} (its first interacted item: '{first}'); give the item file of the same dataset")
    missing = [iid for iid in wanted if iid not in found]
    line = f"items: {len(found):,} of {len(wanted):,} interacted items have a record in {path}"
    if missing:
        line += f"; {len(missing):,} have none ({fate}; first: '{missing[0]}')"
    if total > len(found):
        extra = total - len(found)
        line += f"; {extra:,} other item{'s' if extra != 1 else ''} there ignored"
    notes.append(line)
    out = dict(found)
    for iid in missing:
        out[iid] = Item(iid, [], [], 0)
    return out


_TAG = re.compile(r"<[^>]*>")


def clean_text(text: str) -> str:
    """HTML tags stripped, entities unescaped, white space collapsed."""
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def _strings(value) -> list[str]:
    """The strings in a field: a string, or nested lists of them (2014 categories: a list of paths)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _field_text(obj: dict, name: str) -> str:
    for key in _FIELD_KEYS[name]:
        parts = [clean_text(s) for s in _strings(obj.get(key))]
        parts = [p for p in parts if p]
        if parts:
            return ", ".join(dict.fromkeys(parts)) if name in ("categories", "category") else " ".join(parts)
    return ""


def _image_urls(obj: dict) -> list[str]:
    """Image URLs: imUrl (2014), imageURL / imageURLHighRes (2018), images (2023: large, else hi_res, thumb)."""
    urls: list[str] = []
    for key in ("imUrl", "imageURL", "imageURLHighRes"):
        urls += [u for u in _strings(obj.get(key)) if u.strip()]
        if urls:
            break
    for image in (obj.get("images") or []) if not urls else []:
        if isinstance(image, str) and image.strip():
            urls.append(image)
        elif isinstance(image, dict):
            url = next((image[k] for k in ("large", "hi_res", "thumb") if isinstance(image.get(k), str) and image[k]), None)
            if url:
                urls.append(url)
    return list(dict.fromkeys(u.strip() for u in urls))
