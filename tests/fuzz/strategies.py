"""What the importer fuzz tests share: the settings profile, mutation strategies that break a
valid tiny dataset (structurally, then at the byte level), and the check every import must
pass: a located FormatError or StoreError with the catalog unchanged, or a valid batch.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, currently_in_test_context, settings
from hypothesis import event as _event
from hypothesis import strategies as st
from PIL import Image

from scenesift.io.errors import FormatError
from scenesift.io.formats import read_dataset
from scenesift.records import ImportBatch
from scenesift.store import Store, StoreError
from scenesift.taxonomy import Taxonomy

#: Examples per fuzz test; raise it locally (SCENESIFT_FUZZ_EXAMPLES=20000) for a deep run.
FUZZ_EXAMPLES = int(os.environ.get("SCENESIFT_FUZZ_EXAMPLES", "1000"))

settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,  # the same examples on every run: reproducible in CI
    deadline=None,
    database=None,  # nothing written into the repository
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Decorate a test with ``@FUZZ`` (the ``fuzz`` profile), after ``@given``.
FUZZ = settings.get_profile("fuzz")

# --- hostile values ------------------------------------------------------------------------

NASTY_STRINGS = [
    "",
    " ",
    ".",
    "..",
    "../escape.jpg",
    "/abs/olute.jpg",
    "nul\x00byte.jpg",
    "lone\ud800surrogate",
    "\udfff",
    "\ufeffbom",
    "undefined",
    "car",
    "Car",
    "DontCare",
    "spaceship",
    "night",
    "daytime",
    "rainy",
    "situations",
    "boxes",
    "rectanglelabels",
    "choices",
    "d1/0.jpg",
    "a.jpg",
    "b.jpg",
    "missing.jpg",
    "ünïcödé.jpg",
    "x" * 300,
    "1e999",
    "NaN",
    "-1",
    "2024-13-45T99:99:99",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2024-05-01T10:00:00Z",
    "data:image/png;base64,AAAA",
    "http://example.com/a.jpg",
    "/data/local-files/?d=a.jpg",
]
NASTY_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2,
    3,
    7,
    -0.0,
    0.5,
    3.0,
    1e-320,
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
]
nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NASTY_NUMBERS),
    st.sampled_from(NASTY_STRINGS),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
)
nasty_values = st.one_of(
    nasty_scalars,
    nasty_scalars,
    st.lists(nasty_scalars, max_size=4),
    st.dictionaries(
        st.sampled_from(NASTY_STRINGS) | st.text(max_size=6), nasty_scalars, max_size=3
    ),
    st.sampled_from([[[[[]]]], {}, []]).map(copy.deepcopy),  # fresh: mutations edit in place
)

# --- structural mutations of a JSON document -----------------------------------------------

JsonPath = tuple  # of str (object key) and int (list index)


def json_paths(doc: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every position in the document, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += json_paths(v, (*prefix, i))
    return out


def _at(doc: Any, path: JsonPath) -> Any:
    for k in path:
        doc = doc[k]
    return doc


_OPS = ("delete", "replace", "replace", "replace", "duplicate", "wrap", "unwrap", "add_key")
_OPS += ("copy_from", "rename_key", "clear")


@st.composite
def mutated_json(draw, valid: Any, max_mutations: int = 3) -> Any:
    """``valid`` after 1..max_mutations structural edits: keys dropped or renamed, values of the
    wrong type, nulls, absurd numbers, wrong nesting, duplicated items, unknown keys."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = json_paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(_OPS))
        value = _at(doc, path)
        if op == "replace" or (not path and op in ("delete", "duplicate", "rename_key")):
            new = draw(nasty_values)
        elif op == "wrap":
            new = draw(st.sampled_from([[value], {"value": value}]))
        elif op == "unwrap":
            children = list(value.values()) if isinstance(value, dict) else value
            new = children[0] if isinstance(children, list) and children else None
        elif op == "add_key":
            if isinstance(value, dict):
                key = draw(st.sampled_from(NASTY_STRINGS) | st.text(max_size=6))
                value[key] = draw(nasty_values)
                continue
            new = draw(nasty_values)
        elif op == "copy_from":
            new = copy.deepcopy(_at(doc, draw(st.sampled_from(paths))))
        elif op == "clear":
            new = type(value)() if isinstance(value, list | dict) else draw(nasty_values)
        else:  # delete, duplicate, rename_key on a non-root position
            parent, key = _at(doc, path[:-1]), path[-1]
            if op == "delete":
                del parent[key]
            elif op == "duplicate" and isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            elif isinstance(parent, dict):  # rename (or "duplicate" a key: same thing)
                renamed = draw(st.sampled_from([key.upper(), key + "_", key[:-1], " " + key]))
                parent[renamed] = parent.pop(key)
            continue
        if path:
            _at(doc, path[:-1])[path[-1]] = new
        else:
            doc = new
    return doc


def json_bytes(doc: Any) -> bytes:
    """JSON text as Python writes it (NaN and Infinity included, lone surrogates escaped)."""
    return json.dumps(doc, indent=1).encode("utf-8")


# --- byte-level damage ---------------------------------------------------------------------

_BYTE_OPS = ["keep"] * 6 + ["truncate", "bom", "bad_utf8", "utf16", "empty", "splice", "nul"]
_BYTE_OPS += ["deep_nesting", "huge_number", "crlf"]


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """Usually ``data`` as is; sometimes truncated, with a BOM, non-UTF-8 bytes, UTF-16,
    empty, with random bytes spliced in, NULs, a huge nesting depth or a 5000-digit number."""
    op = draw(st.sampled_from(_BYTE_OPS))
    event(f"bytes: {op}")
    pos = draw(st.integers(0, len(data)))
    if op == "truncate":
        return data[:pos]
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "bad_utf8":
        return (
            data[:pos]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
            + data[pos:]
        )
    if op == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if op == "empty":
        return b""
    if op == "splice":
        return data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    if op == "nul":
        return data[:pos] + b"\x00" + data[pos:]
    if op == "deep_nesting":
        return data[:pos] + b"[" * 5_000 + data[pos:]
    if op == "huge_number":
        return data[:pos] + b"9" * 5000 + data[pos:]
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    return data


def json_file_contents(valid: Any) -> st.SearchStrategy[bytes]:
    """A broken version of a valid JSON document: mostly structural edits, some byte damage,
    some random bytes."""
    structural = mutated_json(valid).map(json_bytes).flatmap(damaged)
    return st.one_of(structural, structural, structural, structural, random_bytes)


random_bytes = st.binary(max_size=300)


# --- CSV -----------------------------------------------------------------------------------


@st.composite
def mutated_rows(draw, rows: list[list[str]], max_mutations: int = 3) -> list[list[str]]:
    """Rows (header first) with cells dropped, added or replaced, rows duplicated or dropped."""
    rows = [list(r) for r in rows]
    cell = (
        st.sampled_from(NASTY_STRINGS)
        | st.text(max_size=8)
        | st.sampled_from(
            ['"', '"quoted', "a,b", "line\nbreak", "1", "0", "yes", "maybe", "x" * 140_000, "inf"]
        )
    )
    for _ in range(draw(st.integers(1, max_mutations))):
        r = draw(st.integers(0, len(rows) - 1)) if rows else 0
        op = draw(st.sampled_from(["replace", "replace", "drop_cell", "add_cell", "dup_row",
                                   "drop_row", "swap_rows", "blank_row"]))  # fmt: skip
        if not rows:
            rows.append([draw(cell)])
        elif op == "replace" and rows[r]:
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(cell)
        elif op == "drop_cell" and rows[r]:
            del rows[r][draw(st.integers(0, len(rows[r]) - 1))]
        elif op == "add_cell":
            rows[r].insert(draw(st.integers(0, len(rows[r]))), draw(cell))
        elif op == "dup_row":
            rows.insert(r, list(rows[r]))
        elif op == "drop_row":
            del rows[r]
        elif op == "swap_rows":
            s = draw(st.integers(0, len(rows) - 1))
            rows[r], rows[s] = rows[s], rows[r]
        else:
            rows.insert(r, [])
    return rows


@st.composite
def csv_text(draw, rows: list[list[str]]) -> bytes:
    """Rows written by the csv module (quoted properly) or joined naively (broken quoting)."""
    if draw(st.booleans()):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        text = buf.getvalue()
    else:
        text = "".join(",".join(r) + "\n" for r in rows)
    return text.encode("utf-8", "surrogatepass")


def csv_file_contents(rows: list[list[str]]) -> st.SearchStrategy[bytes]:
    structural = mutated_rows(rows).flatmap(csv_text).flatmap(damaged)
    return st.one_of(structural, structural, structural, structural, random_bytes)


# --- the tiny valid world ------------------------------------------------------------------


def write_tiny_jpeg(path: Path, seed: int = 0) -> Path:
    """An 8x8 JPEG (the images are not what is being fuzzed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (40 * seed % 256, 90, 150)).save(path, quality=80)
    return path


#: Every table an import writes to.
CATALOG_TABLES = (
    "image_roots",
    "drives",
    "frames",
    "situation_labels",
    "box_sets",
    "boxes",
    "imports",
)


def catalog_dump(store: Store) -> dict[str, list[tuple]]:
    """A canonical dump of the tables an import writes."""
    return {
        t: sorted(store.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
        for t in CATALOG_TABLES
    }


_WHERE = re.compile(r"^(file|byte \d+|line \d+.*|column .+|\$.*|image_2|label_2.*)$", re.S)


def check_located(error: FormatError, files: Sequence[Path]) -> None:
    """The error names one of the input files, a place in it and what was expected."""
    assert error.path in {str(f) for f in files}, (error.path, files)
    assert _WHERE.match(error.where), error.where
    assert error.expected
    assert str(error).startswith(f"{error.path}: {error.where}: expected ")


def check_batch(batch: ImportBatch, taxonomy: Taxonomy) -> None:
    """What every accepted batch promises the store and the exporters."""
    names = [f.name for f in batch.frames]
    assert len(names) == len(set(names))
    assert batch.report.frames == len(batch.frames)
    for f in batch.frames:
        assert isinstance(f.name, str) and f.name and "\x00" not in f.name
        f.name.encode("utf-8")  # no lone surrogates
        assert not f.name.startswith("/") and ".." not in f.name.split("/")
        f.drive.encode("utf-8")
        assert f.drive and "\x00" not in f.drive
        for size in (f.width, f.height):
            assert size is None or (isinstance(size, int) and 0 < size <= 1_000_000), size
        assert f.timestamp is None or math.isfinite(f.timestamp)
        assert all(s in taxonomy and isinstance(v, bool) for s, v in f.situations.items())
        for b in f.boxes or ():
            assert b.category in taxonomy.classes
            assert 0 <= b.x1 < b.x2 and 0 <= b.y1 < b.y2
            if f.width is not None and f.height is not None:
                assert b.x2 <= f.width and b.y2 <= f.height
            json.dumps(dict(b.attributes))


def check_import(
    store: Store,
    fmt: str,
    source: Path,
    files: Sequence[Path],
    *,
    labels_only: bool = False,
    read: Callable[[], ImportBatch] | None = None,
) -> str:
    """Read ``source`` and ingest it: either a located FormatError / a StoreError with the
    catalog exactly as before, or a valid batch that the store accepts. Any other exception
    fails the test. Returns the outcome (also recorded as a hypothesis event)."""
    taxonomy = store.taxonomy
    before = catalog_dump(store)
    try:
        batch = read() if read else read_dataset(fmt, source, taxonomy)
    except FormatError as e:
        check_located(e, files)
        outcome = "FormatError"
    else:
        check_batch(batch, taxonomy)
        try:
            store.ingest(batch, labels_only=labels_only)
        except StoreError:
            outcome = "StoreError"
        else:
            event(f"skipped images: {bool(batch.report.skipped_images)}")
            return _outcome("imported")
    assert catalog_dump(store) == before, "a failed import changed the catalog"
    return _outcome(outcome)


def _outcome(name: str) -> str:
    event(f"outcome: {name}")
    return name


def event(text: str) -> None:
    """A hypothesis event (see ``--hypothesis-show-statistics``), ignored outside a test."""
    if currently_in_test_context():
        _event(text)


# --- KITTI ---------------------------------------------------------------------------------

NASTY_TOKENS = [
    "nan", "inf", "-inf", "1e999", "-1e999", "1e308", "-1e308", "-1", "0", "1", "2", "3", "4",
    "0.5", "1.5", "-0.5", "abc", "1_0", "0x10", "1,5", "DontCare", "Car", "Van", "Misc",
    "spaceship", "\u0663", "\uff11", "\u2028", "\x0c", "\x00", "\ufeff", "\ud800", "", "x" * 400,
]  # fmt: skip


@st.composite
def kitti_label_files(draw, valid: dict[str, list[list[str]]]) -> dict[str, bytes]:
    """KITTI label files (stem -> bytes) with tokens replaced, dropped or added, lines
    duplicated or dropped, files dropped, emptied or orphaned, then byte damage to one."""
    files = {stem: [list(line) for line in lines] for stem, lines in valid.items()}
    a_line = next(line for lines in valid.values() for line in lines)
    token = st.sampled_from(NASTY_TOKENS) | st.text(max_size=6)
    ops = ["token", "token", "token", "drop_token", "add_token", "dup_line", "drop_line"]
    ops += ["blank_line", "drop_file", "orphan_file", "empty_file"]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        if op == "orphan_file":
            files["999999"] = [list(a_line)]  # a label file without its image
            continue
        if not files:
            continue
        stem = draw(st.sampled_from(sorted(files)))
        lines = files[stem]
        if op == "drop_file":
            del files[stem]
        elif op == "empty_file" or not lines:
            files[stem] = []
        elif op == "blank_line":
            lines.insert(draw(st.integers(0, len(lines))), [])
        else:
            i = draw(st.integers(0, len(lines) - 1))
            line = lines[i]
            if op == "dup_line":
                lines.insert(i, list(line))
            elif op == "drop_line":
                del lines[i]
            elif op == "add_token":
                line.insert(draw(st.integers(0, len(line))), draw(token))
            elif line:
                j = draw(st.integers(0, len(line) - 1))
                if op == "drop_token":
                    del line[j]
                else:
                    line[j] = draw(token)
    out = {
        stem: "".join(" ".join(line) + "\n" for line in lines).encode("utf-8", "surrogatepass")
        for stem, lines in files.items()
    }
    if out and draw(st.integers(0, 3)) == 0:
        stem = draw(st.sampled_from(sorted(out)))
        out[stem] = draw(damaged(out[stem]) | random_bytes)
    return out
