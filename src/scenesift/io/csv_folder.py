"""A folder of images plus a CSV of situation tags: the simplest way to bring labels in.

Columns: ``image`` (required, path relative to the image folder), optional ``drive``,
``timestamp`` (seconds) and ``split``, then one column per situation holding
``1/0/true/false/yes/no`` or nothing (= not labelled). A column that is not a situation of
the taxonomy is an error, so a typo in a header never creates a silent new situation.
Frames without a drive are each their own drive; the CSV carries no boxes. A split belongs
to a drive: rows of one drive may leave it empty but may not disagree.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scenesift.io.common import (
    ImageProblem,
    Track,
    atomic_write,
    check_exclusive,
    image_folder,
    is_relative_name,
    probe_image,
    tracked,
)
from scenesift.io.errors import FormatError
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store.splits import SPLITS
from scenesift.taxonomy import Taxonomy

META_COLUMNS = ("image", "drive", "timestamp", "split")
TRUE_VALUES = ("1", "true", "yes")
FALSE_VALUES = ("0", "false", "no")
_ACCEPTED = "1, 0, true, false, yes, no or an empty cell"


@dataclass
class _Row:
    line: int
    cells: dict[str, str]


def read_csv_folder(
    csv_path: Path,
    taxonomy: Taxonomy,
    *,
    verify_images: bool = True,
    track: Track | None = None,
    image_dir: Path | None = None,
) -> ImportBatch:
    """Read the CSV and its images (under ``image_dir``, default the CSV's folder)."""
    path = Path(csv_path).resolve()
    root = path.parent if image_dir is None else image_folder(image_dir).resolve()
    rows = list(_unique_rows(path, taxonomy))
    records = [_parse_row(row, path, taxonomy) for row in rows]
    _drive_splits(rows, records, path)
    report = ImportReport(source=f"csv:{path}")
    frames = []
    for frame in tracked(records, track):
        frame.path = root / frame.name
        try:
            frame.width, frame.height = probe_image(frame.path, verify_images)
        except ImageProblem as e:
            report.skipped_images.append((str(frame.path), str(e)))
            continue
        frames.append(frame)
        report.situation_values += len(frame.situations)
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=root, report=report)


def _rows(path: Path, taxonomy: Taxonomy) -> Iterator[_Row]:
    """Non-blank data rows keyed by column, with the line each starts on (header = line 1)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise FormatError(path, "line 1", "a header row with an 'image' column", "")
            columns = _check_header([h.strip() for h in header], path, taxonomy)
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(columns):
                    expected = f"{len(columns)} fields as in the header"
                    raise FormatError(path, f"line {line}", expected, len(cells))
                yield _Row(line, {c: v.strip() for c, v in zip(columns, cells, strict=True)})
    except FileNotFoundError:
        raise FormatError(path, "file", "an existing file", "missing") from None
    except UnicodeDecodeError as e:
        raise FormatError(path, f"byte {e.start}", "UTF-8 text") from None
    except OSError as e:  # a folder, no permission, ...
        raise FormatError(path, "file", "a readable CSV file", e.strerror or str(e)) from None
    except csv.Error as e:
        raise FormatError(path, f"line {reader.line_num}", f"valid CSV ({e})") from None


def _check_header(columns: list[str], path: Path, taxonomy: Taxonomy) -> list[str]:
    seen = set()
    for col in columns:
        if col in seen:
            raise FormatError(path, f"column {col!r}", "each column once")
        seen.add(col)
        if col not in META_COLUMNS and col not in taxonomy:
            known = ", ".join(taxonomy.names)
            raise FormatError(
                path,
                f"column {col!r}",
                f"image, drive, timestamp, split or a known situation ({known})",
            )
    if "image" not in seen:
        raise FormatError(path, "line 1", "an 'image' column in the header", columns)
    return columns


def _unique_rows(path: Path, taxonomy: Taxonomy) -> Iterator[_Row]:
    first_line: dict[str, int] = {}
    for row in _rows(path, taxonomy):
        name = _frame_name(row, path)
        if name in first_line:
            expected = f"each image once (already on line {first_line[name]})"
            raise FormatError(path, f"line {row.line}, column 'image'", expected, name)
        first_line[name] = row.line
        row.cells["image"] = name
        yield row


def _frame_name(row: _Row, path: Path) -> str:
    name = Path(row.cells["image"])
    if not is_relative_name(row.cells["image"]) or name.is_absolute() or ".." in name.parts:
        where = f"line {row.line}, column 'image'"
        raise FormatError(path, where, "a relative path inside the image folder", str(name))
    return name.as_posix()


def _parse_row(row: _Row, path: Path, taxonomy: Taxonomy) -> FrameRecord:
    name = row.cells["image"]
    situations = {}
    for col, cell in row.cells.items():
        if col in META_COLUMNS or not cell:
            continue
        value = cell.lower()
        if value not in TRUE_VALUES + FALSE_VALUES:
            raise FormatError(path, f"line {row.line}, column {col!r}", _ACCEPTED, cell)
        situations[col] = value in TRUE_VALUES
    check_exclusive(situations, taxonomy, path, f"line {row.line}")
    drive = row.cells.get("drive") or name
    if "\x00" in drive:
        raise FormatError(path, f"line {row.line}, column 'drive'", "a drive id without NUL", drive)
    return FrameRecord(
        name=name,
        path=Path(name),  # made absolute once the image folder is known
        drive=drive,
        timestamp=_timestamp(row, path),
        split=_split(row, path),
        situations=situations,
        boxes=None,
    )


def _split(row: _Row, path: Path) -> str | None:
    cell = row.cells.get("split")
    if cell and cell not in SPLITS:
        where = f"line {row.line}, column 'split'"
        raise FormatError(path, where, f"{', '.join(SPLITS[:-1])} or {SPLITS[-1]} or empty", cell)
    return cell or None


def _drive_splits(rows: list[_Row], records: list[FrameRecord], path: Path) -> None:
    """One split per drive (neighbouring frames must not straddle train and test): rows
    that disagree are an error; rows that leave it empty take their drive's."""
    first: dict[str, tuple[str, int]] = {}
    for row, rec in zip(rows, records, strict=True):
        if rec.split is None:
            continue
        split, line = first.setdefault(rec.drive, (rec.split, row.line))
        if split != rec.split:
            where = f"line {row.line}, column 'split'"
            expected = f"the split of drive {rec.drive!r}: {split!r} (line {line})"
            raise FormatError(path, where, expected, rec.split)
    for rec in records:
        if rec.split is None and rec.drive in first:
            rec.split = first[rec.drive][0]


def _timestamp(row: _Row, path: Path) -> float | None:
    cell = row.cells.get("timestamp")
    if not cell:
        return None
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        where = f"line {row.line}, column 'timestamp'"
        raise FormatError(path, where, "a number of seconds or an empty cell", cell)
    return value


def write_csv_folder(frames: Iterable[FrameRecord], taxonomy: Taxonomy, csv_path: Path) -> Path:
    """Write situations as 1/0/empty (only taxonomy situations), one row per frame.

    ``image`` is the frame name, so the CSV reads back when placed in (or pointed at) the
    image root. A ``split`` column is written only when some frame has a split.
    """
    frames = list(frames)
    meta = ["image", "drive", "timestamp"]
    if any(f.split for f in frames):
        meta.append("split")
    with atomic_write(Path(csv_path)) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(meta + taxonomy.names)
        for frame in frames:
            stamp = "" if frame.timestamp is None else repr(frame.timestamp)
            row = [frame.name, frame.drive, stamp]
            if "split" in meta:
                row.append(frame.split or "")
            row += [_cell(frame.situations.get(s)) for s in taxonomy.names]
            writer.writerow(row)
    return Path(csv_path)


def _cell(value: bool | None) -> str:
    return "" if value is None else str(int(value))
