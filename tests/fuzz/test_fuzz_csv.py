"""Fuzzing the CSV folder importer: broken tag tables fail cleanly, never half-written."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, csv_file_contents, write_tiny_jpeg

from scenesift.io.csv_folder import read_csv_folder
from scenesift.io.errors import FormatError
from scenesift.store import Store

VALID = [
    ["image", "drive", "timestamp", "split", "night", "day", "rain", "crowded"],
    ["a.jpg", "d1", "0.0", "train", "1", "0", "", "yes"],
    ["d1/b.jpg", "d1", "0.5", "", "0", "1", "false", ""],
    ["c.jpg", "", "", "", "", "", "", "NO"],
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_csv")
    for i, row in enumerate(VALID[1:]):
        write_tiny_jpeg(root / row[0], i)
    tags = root / "tags.csv"
    tags.write_text("".join(",".join(row) + "\n" for row in VALID))
    store = Store.init(root / "project")
    store.ingest(read_csv_folder(tags, store.taxonomy))
    yield tags, store
    store.close()


@pytest.mark.fuzz
@FUZZ
@given(contents=csv_file_contents(VALID))
def test_broken_csv_tables_fail_cleanly_and_change_nothing(env, contents):
    tags, store = env
    tags.write_bytes(contents)
    check_import(store, "csv", tags, [tags])


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("image,night\na\x00.jpg,1\n", "line 2, column 'image'"),  # was: ValueError (os.stat)
        ("image,drive\na.jpg,d\x00\n", "line 2, column 'drive'"),
    ],
)
def test_a_nul_in_a_name_is_a_located_format_error(env, text, where):
    tags, store = env
    tags.write_text(text)
    assert check_import(store, "csv", tags, [tags]) == "FormatError"
    with pytest.raises(FormatError) as info:
        read_csv_folder(tags, store.taxonomy)
    assert info.value.where == where


def test_a_folder_instead_of_the_csv_is_a_format_error(env, tmp_path):
    with pytest.raises(FormatError, match="expected a readable CSV file"):
        read_csv_folder(tmp_path, env[1].taxonomy)
