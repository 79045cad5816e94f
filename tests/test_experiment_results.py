"""The tidy results table: whole runs or nothing, resumable, typed."""

from __future__ import annotations

import math

import pytest

from scenesift.experiments.results import (
    COLUMNS,
    append_run,
    code_version,
    finished_runs,
    frame,
    read_results,
)


def row(run: str, value: float, **kw) -> dict:
    base = dict(experiment="e", study="strategies", run=run, strategy="random", seed=0,
                round=1, n_labelled=100, metric="map50", value=value)  # fmt: skip
    return {**base, **kw}


def test_runs_are_appended_as_whole_files_and_read_back_typed(tmp_path):
    assert finished_runs(tmp_path / "none") == set()
    assert list(read_results(tmp_path).columns) == list(COLUMNS)
    append_run(tmp_path, "random/s0", [row("random/s0", 0.3), row("random/s0", None, round=2)])
    append_run(tmp_path, "lc/s0", [row("lc/s0", 0.4, strategy="least_confidence")])
    assert finished_runs(tmp_path) == {"random/s0", "lc/s0"}
    df = read_results(tmp_path)
    assert len(df) == 3 and dict(df.dtypes.astype(str)) == COLUMNS
    assert math.isnan(df.loc[df["round"] == 2, "value"].item())  # undefined stays NaN
    assert set(df["class"]) == {"all"}


def test_a_failed_write_leaves_no_run_behind(tmp_path):
    with pytest.raises(ValueError, match="lack column"):
        append_run(tmp_path, "bad", [{"run": "bad"}])
    assert finished_runs(tmp_path) == set() and not list(tmp_path.iterdir())


def test_frame_fills_optional_columns():
    df = frame([row("r", 0.5)])
    assert df["situation"].item() == "all" and math.isnan(df["fraction"].item())


def test_every_row_says_which_code_computed_it(tmp_path):
    from scenesift import __version__

    version = code_version()
    assert version.startswith(__version__)  # plus "+g<commit>" in a git checkout
    append_run(tmp_path, "new", [row("new", 0.5)])
    # a run kept from before the column existed reads back with an unknown ("") version
    frame([row("old", 0.4)]).drop(columns="code").to_parquet(tmp_path / "old.parquet")
    df = read_results(tmp_path).set_index("run")
    assert df.loc["new", "code"] == version and df.loc["old", "code"] == ""
    assert dict(df.reset_index().dtypes.astype(str)) == COLUMNS
