"""Helpers every importer shares: image probing, box clipping, located JSON validation.

Importers validate everything before anything is written, so that a bad file raises one
:class:`FormatError` naming where it is bad and the store is left untouched.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from scenesift.files import atomic_write, write_json  # noqa: F401 (re-exported)
from scenesift.io.errors import FormatError
from scenesift.records import Box, ImportReport
from scenesift.taxonomy import Taxonomy

T = TypeVar("T")

#: ``track(items, total)`` yields the items while showing progress (the CLI passes a rich
#: progress bar); importers call it around their per-image loop, the slow part.
Track = Callable[[Iterable, int], Iterable]


def tracked(items: Sequence[T], track: Track | None) -> Iterable[T]:
    return track(items, len(items)) if track else items


#: Images larger than this (in pixels) are treated as corrupt rather than decoded.
MAX_IMAGE_PIXELS = 100_000_000


class ImageProblem(Exception):
    """An image that cannot be used; the message is the reason shown in the import summary."""


def probe_image(path: Path, verify: bool = True) -> tuple[int, int]:
    """Return (width, height) of a usable image, or raise :class:`ImageProblem`.

    With ``verify`` the image is decoded too, at 1/8 scale for JPEG (``draft``), which catches
    truncated files for a fraction of a full decode's cost.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageProblem("missing") from None
    except OSError as e:  # name too long, not a folder on the way, no permission
        raise ImageProblem(e.strerror or "unreadable") from None
    except ValueError:  # a NUL character, or a name the file system cannot encode
        raise ImageProblem("not a valid file name") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageProblem("not a file")
    if info.st_size == 0:
        raise ImageProblem("empty file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width <= 0 or height <= 0 or width * height > MAX_IMAGE_PIXELS:
                raise ImageProblem(f"absurd dimensions {width}x{height}")
            if verify:
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                im.load()
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image") from None
    except Image.DecompressionBombError as e:  # a header claiming billions of pixels
        raise ImageProblem(f"absurd dimensions ({e})") from None
    except MemoryError:
        raise
    except Exception as e:  # decoders raise OSError, SyntaxError, EOFError, struct.error, ...
        raise ImageProblem(f"corrupt ({type(e).__name__}: {e})") from None
    return width, height


def image_folder(path: Path) -> Path:
    """``path``, or a FormatError when it is not a folder: a mistyped ``--images`` would
    otherwise skip every frame as missing and still register the folder in the project."""
    path = Path(path)
    if not path.is_dir():
        got = "a file" if path.exists() else "missing"
        raise FormatError(path, "folder", "an existing image folder", got)
    return path


def check_exclusive(
    situations: Mapping[str, bool], taxonomy: Taxonomy, path: Path | str, where: str
) -> None:
    """Refuse two true situations of one exclusive group (day and night), as the web app
    does: the catalog would hold a frame that is both."""
    for group, members in taxonomy.groups().items():
        true = [m for m in members if situations.get(m)]
        if len(true) > 1:
            expected = f"at most one true situation of the exclusive group {group!r}"
            raise FormatError(path, where, f"{expected} ({', '.join(members)})", true)


def is_file(path: Path) -> bool:
    """``path.is_file()``, False too for names the file system refuses (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def clip_box(box: Box, width: int, height: int, report: ImportReport) -> Box | None:
    """Clip a box to the image, counting what was clipped; None (counted) if nothing is left."""
    coords = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(c) for c in coords):
        report.dropped_boxes += 1
        return None
    x1, y1 = min(max(box.x1, 0.0), width), min(max(box.y1, 0.0), height)
    x2, y2 = min(max(box.x2, 0.0), width), min(max(box.y2, 0.0), height)
    if x2 - x1 < 1e-6 or y2 - y1 < 1e-6:
        report.dropped_boxes += 1
        return None
    if (x1, y1, x2, y2) != coords:
        report.clipped_boxes += 1
        return replace(box, x1=x1, y1=y1, x2=x2, y2=y2)
    return box


def keep_boxes(
    boxes: Iterable[Box],
    category_map: Mapping[str, str | None],
    classes: Collection[str],
    width: int,
    height: int,
    report: ImportReport,
) -> list[Box]:
    """Map each box's category (None: leave it out), count and drop categories that are not
    project classes, and clip the rest to the image. Every category left out or imported
    under another name is counted, so the import summary shows what happened to each."""
    kept = []
    for box in boxes:
        category = category_map.get(box.category, box.category)
        if category is None:
            report.count_ignored_category(box.category)
            continue
        if category not in classes:
            report.count_unknown_category(box.category)
            continue
        clipped = clip_box(box, width, height, report)
        if clipped is not None:
            if category.casefold() != box.category.casefold():  # KITTI's Car is car
                report.count_mapped_category(box.category, category)
            kept.append(replace(clipped, category=category))
    return kept


_BOM = b"\xef\xbb\xbf"


def read_text(path: Path) -> str:
    """A whole text file as UTF-8 (a leading byte-order mark is dropped); FormatError if it
    is missing, unreadable or not UTF-8 (naming the first bad byte)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "file", "an existing file", "missing") from None
    except OSError as e:  # a folder, no permission, ...
        raise FormatError(path, "file", "a readable file", e.strerror or str(e)) from None
    offset = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"byte {e.start + offset}", "UTF-8 text") from None


#: A ``\uD800``-``\uDFFF`` escape: JSON can spell lone surrogates, which are not text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def read_json(path: Path) -> Any:
    """Load JSON, turning a decode error into a FormatError with line and column.

    Beyond the JSON grammar: too deep nesting, integers of more than 4300 digits and lone
    surrogate escapes (``"\\ud800"``, not valid Unicode) are FormatErrors too.
    """
    text = read_text(path)
    constants: list[str] = []
    try:
        doc = json.loads(text, parse_constant=lambda c: constants.append(c) or float(c))
    except json.JSONDecodeError as e:
        raise FormatError(
            path, f"line {e.lineno} column {e.colno}", f"valid JSON ({e.msg})"
        ) from None
    except RecursionError:
        raise FormatError(path, "file", "JSON nested less than about 900 levels deep") from None
    except ValueError as e:  # int of > 4300 digits
        raise FormatError(path, "file", f"valid JSON numbers ({e})") from None
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(doc)
        if where is not None:
            raise FormatError(path, where, "valid Unicode text (a lone surrogate escape)")
    if constants or _HUGE_EXPONENT.search(text):  # NaN, Infinity, or 1e999 (= inf)
        where, value = _non_finite(doc)
        if where is not None:
            raise FormatError(
                path, where, "a finite number (strict JSON has no NaN/Infinity)", value
            )
    return doc


#: An exponent of 3+ digits: the only way a JSON number literal can overflow to infinity.
_HUGE_EXPONENT = re.compile(r"[0-9.][eE][+]?0*[0-9]{3}")


def _non_finite(doc: Any) -> tuple[str | None, float | None]:
    """The JSON path and value of the first NaN or infinite number (iterative)."""
    stack: list[tuple[Any, str]] = [(doc, "$")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return where, value
        elif isinstance(value, dict):
            stack.extend((v, f"{where}.{k}") for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None, None


def printable(text: str | Path) -> str:
    """``text`` with lone surrogates (undecodable file-name bytes, JSON escapes) written as
    backslash escapes, so that it can be stored, printed and written as JSON. Undecodable
    file-name bytes are shown as the bytes they were (``\\xff``)."""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def is_text(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates)."""
    return printable(text) == text


def _lone_surrogate(doc: Any) -> str | None:
    """The JSON path of the first string or key holding a lone surrogate (iterative: the
    document may be nested nearly as deep as the parser allows)."""
    stack: list[tuple[Any, str]] = [(doc, "$")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                return where
        elif isinstance(value, dict):
            for key in value:
                if not is_text(key):
                    return f"{where}.{printable(key)}"
            stack.extend((v, f"{where}.{k}") for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None


def drive_id(item: JsonCursor, key: str) -> str:
    """``item[key]`` as a drive id: an integer, or a non-empty string without NUL."""
    v = item[key].value
    if isinstance(v, bool) or not isinstance(v, int | str) or v == "" or "\x00" in str(v):
        raise item.error("a drive id (string or integer)", v, key)
    return str(v)


def is_relative_name(name: str) -> bool:
    """Whether a path from a label file can name a frame: relative, inside the image
    folder (no ``..``), not the folder itself, and without NUL characters."""
    if not name or "\x00" in name:
        return False
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts


class JsonCursor:
    """A value inside a JSON document that knows its file and JSON path, for error messages.

    ``cur["labels"][0]["box2d"].number("x1")`` either returns the number or raises a
    FormatError like ``labels.json: $[3].labels[0].box2d.x1: expected a number, got 'abc'``.
    """

    __slots__ = ("path", "value", "where")

    def __init__(self, value: Any, path: Path | str, where: str = "$") -> None:
        self.value = value
        self.path = path
        self.where = where

    def error(self, expected: str, got: object | None = None, key: str | int | None = None):
        return FormatError(
            self.path, self._sub(key) if key is not None else self.where, expected, got
        )

    def _sub(self, key: str | int) -> str:
        return f"{self.where}[{key}]" if isinstance(key, int) else f"{self.where}.{key}"

    def __getitem__(self, key: str | int) -> JsonCursor:
        if isinstance(key, int):
            if not isinstance(self.value, list):
                raise self.error("a list", type(self.value).__name__)
            return JsonCursor(self.value[key], self.path, self._sub(key))
        if not isinstance(self.value, dict):
            raise self.error("an object", type(self.value).__name__)
        if key not in self.value:
            raise self.error("this field to be present", None, key)
        return JsonCursor(self.value[key], self.path, self._sub(key))

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and self.value.get(key) is not None

    def get(self, key: str) -> JsonCursor | None:
        return self[key] if self.has(key) else None

    def items(self) -> Iterator[JsonCursor]:
        if not isinstance(self.value, list):
            raise self.error("a list", type(self.value).__name__)
        for i, v in enumerate(self.value):
            yield JsonCursor(v, self.path, self._sub(i))

    def obj(self) -> dict:
        if not isinstance(self.value, dict):
            raise self.error("an object", type(self.value).__name__)
        return self.value

    def number(self, key: str | None = None) -> float:
        cur = self[key] if key is not None else self
        v = cur.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise cur.error("a finite number", v)
        try:
            f = float(v)
        except OverflowError:  # an integer beyond the float range
            f = math.inf
        if not math.isfinite(f):
            raise cur.error("a finite number", v)
        return f

    def string(self, key: str | None = None) -> str:
        cur = self[key] if key is not None else self
        if not isinstance(cur.value, str) or not cur.value:
            raise cur.error("a non-empty string", cur.value)
        return cur.value

    def boolean(self, key: str | None = None) -> bool:
        cur = self[key] if key is not None else self
        if not isinstance(cur.value, bool):
            raise cur.error("true or false", cur.value)
        return cur.value


def relative_name(path: Path, root: Path) -> str:
    """A frame name: the image path relative to its root, with forward slashes.

    ``abspath``, not ``resolve``: a symlinked image keeps its in-root name.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(os.pardir):
        raise ValueError(f"{path} is not under {root}")
    return Path(rel).as_posix()
