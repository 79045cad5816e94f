from __future__ import annotations

from pathlib import Path

import pytest

from io_fixtures import frame, write_empty, write_image, write_truncated_jpeg
from scenesift.io.csv_folder import read_csv_folder, write_csv_folder
from scenesift.io.errors import FormatError
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def csv_file(tmp_path: Path, text: str, images: tuple[str, ...] = ("a.png", "b.png")) -> Path:
    for name in images:
        write_image(tmp_path / name)
    path = tmp_path / "tags.csv"
    path.write_text(text)
    return path


def test_reads_values_missing_cells_and_meta_columns(tmp_path):
    path = csv_file(
        tmp_path,
        "image,drive,timestamp,night,rain,tunnel\na.png,d1,1.5,1,no,\n\nb.png,,,TRUE, yes ,0\n",
    )
    batch = read_csv_folder(path, TAX)
    a, b = batch.frames
    assert (a.drive, a.timestamp, a.situations) == ("d1", 1.5, {"night": True, "rain": False})
    assert (b.drive, b.timestamp) == ("b.png", None)
    assert b.situations == {"night": True, "rain": True, "tunnel": False}
    assert (a.width, a.height, a.path, a.boxes) == (64, 48, tmp_path / "a.png", None)
    assert batch.image_root == tmp_path
    assert (batch.report.frames, batch.report.situation_values) == (2, 5)
    assert batch.report.source == f"csv:{path}"


def test_round_trip(tmp_path):
    records = [
        frame(tmp_path / "img", "x/a.png", drive="d1", timestamp=0.1, situations={"fog": True}),
        frame(tmp_path / "img", "b.png", situations={"day": False, "crowded": True}, split="test"),
        frame(tmp_path / "img", "c.png"),
    ]
    path = write_csv_folder(records, TAX, tmp_path / "tags.csv")
    back = read_csv_folder(path, TAX, image_dir=tmp_path / "img").frames
    for got, rec in zip(back, records, strict=True):
        assert (got.name, got.path, got.drive) == (rec.name, rec.path, rec.drive)
        assert (got.timestamp, got.split, got.situations) == (
            rec.timestamp,
            rec.split,
            rec.situations,
        )
        assert got.boxes is None


def test_unknown_column_lists_known_situations(tmp_path):
    path = csv_file(tmp_path, "image,night,foo\na.png,1,1\n")
    with pytest.raises(FormatError) as e:
        read_csv_folder(path, TAX)
    assert e.value.where == "column 'foo'"
    assert "tags.csv" in str(e.value) and "night" in str(e.value) and "roadworks" in str(e.value)


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("image,night\na.png,1\nb.png,maybe\n", "line 3, column 'night'", "yes, no"),
        ("image,timestamp\na.png,soon\n", "line 2, column 'timestamp'", "seconds"),
        ("image,night\na.png,1\n\nb.png,1\na.png,0\n", "line 5, column 'image'", "line 2"),
        ("image,night\na.png,1,1\n", "line 2", "2 fields"),
        ("night,rain\n1,0\n", "line 1", "'image' column"),
        ("image,night,night\n", "column 'night'", "each column once"),
        ("image,night\n/etc/a.png,1\n", "line 2, column 'image'", "relative path"),
        ("", "line 1", "header"),
    ],
)
def test_malformed_input_names_line_and_column(tmp_path, text, where, expected):
    path = csv_file(tmp_path, text)
    with pytest.raises(FormatError) as e:
        read_csv_folder(path, TAX)
    assert e.value.where == where
    assert "tags.csv" in str(e.value) and expected in str(e.value)


def test_quoted_multiline_cell_keeps_line_numbers(tmp_path):
    path = csv_file(tmp_path, 'image,drive,night\na.png,"two\nlines",1\nb.png,d,x\n')
    with pytest.raises(FormatError) as e:
        read_csv_folder(path, TAX)
    assert e.value.where == "line 4, column 'night'"


def test_bad_images_are_skipped_and_listed(tmp_path):
    write_empty(tmp_path / "empty.png")
    write_truncated_jpeg(tmp_path / "cut.jpg")
    path = csv_file(tmp_path, "image,night\na.png,1\ngone.png,1\nempty.png,0\ncut.jpg,\n")
    batch = read_csv_folder(path, TAX)
    assert [f.name for f in batch.frames] == ["a.png"]
    reasons = {Path(p).name: why for p, why in batch.report.skipped_images}
    assert reasons["gone.png"] == "missing"
    assert reasons["empty.png"] == "empty file"
    assert reasons["cut.jpg"].startswith("corrupt")
    assert read_csv_folder(path, TAX, verify_images=False).report.frames == 2


def test_two_situations_of_an_exclusive_group_are_refused(tmp_path):
    path = csv_file(tmp_path, "image,day,night\na.png,0,0\nb.png,1,yes\n")
    with pytest.raises(FormatError, match=r"line 3: .*time_of_day.*\['day', 'night'\]"):
        read_csv_folder(path, TAX)


def test_the_split_column_is_read_per_drive(tmp_path):
    text = "image,drive,split\na.png,d1,test\nb.png,d1,\nc.png,d2,\n"
    batch = read_csv_folder(csv_file(tmp_path, text, ("a.png", "b.png", "c.png")), TAX)
    assert [f.split for f in batch.frames] == ["test", "test", None]


def test_an_unknown_split_names_line_and_allowed_values(tmp_path):
    path = csv_file(tmp_path, "image,split\na.png,train\nb.png,bogus\n")
    with pytest.raises(FormatError, match=r"line 3, column 'split': .*train, val or test.*bogus"):
        read_csv_folder(path, TAX)


def test_conflicting_splits_of_one_drive_name_both_lines(tmp_path):
    path = csv_file(tmp_path, "image,drive,split\na.png,d1,train\nb.png,d1,test\n")
    with pytest.raises(FormatError, match=r"line 3, column 'split': .*drive 'd1'.*line 2"):
        read_csv_folder(path, TAX)


def test_a_missing_image_folder_is_an_error(tmp_path):
    path = csv_file(tmp_path, "image\na.png\n")
    with pytest.raises(FormatError, match="an existing image folder"):
        read_csv_folder(path, TAX, image_dir=tmp_path / "nowhere")
