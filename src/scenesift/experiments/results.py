"""The tidy results table: one row per measurement, one Parquet file per finished run.

Columns (``COLUMNS``):

=============  ===========================================================================
experiment     the experiment's name
study          ``variance`` (random subsets), ``strategies`` (campaigns), ``tagger``
run            id of the run that produced the row (unique within an experiment)
strategy       strategy name (``random`` for random subsets / random campaigns)
seed           the run's seed (the repeat index in the variance study)
round          campaign round (0 for a single training)
fraction       share of the pool used for training (NaN when not a fraction study)
n_labelled     frames the model was trained on
metric         ``map50`` | ``map`` (COCO; per situation slice too) | ``ap50`` (per class) | ``auc``
               | ``eval_objects`` / ``eval_frames`` (the evaluation split's truth: objects per
               class, positive frames per situation; round 0, once per run)
               | ``pool_objects`` / ``pool_frames`` (the same counts over the pool)
               | ``teacher_map50`` / ``teacher_map`` / ``teacher_ap50`` (self-training,
               ``learner.pseudo_labels``: the round's teacher, trained on the same labelled
               frames without the pseudo-labelled ones: the row's gain over it is
               self-training's)
class          object class, or ``all``
situation      situation slice, or ``all``
value          the measurement (NaN when undefined, e.g. no instances)
n_frames       frames in the evaluated slice
seconds        wall time of the run's training + evaluation for that round
code           the scenesift that computed the row (``code_version``; "" in files written
               before the column existed): results pooled over sessions or machines say
               which code made each run
=============  ===========================================================================

Every run writes its rows in one file, ``<dir>/<run>.parquet``, by write-then-rename: a run
is either in the table completely or not at all, so an interrupted experiment resumes by
skipping the runs whose files exist, and never re-runs finished work.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from scenesift.files import atomic_write, fit_name

COLUMNS = {
    "experiment": "string",
    "study": "string",
    "run": "string",
    "strategy": "string",
    "seed": "int64",
    "round": "int64",
    "fraction": "float64",
    "n_labelled": "int64",
    "metric": "string",
    "class": "string",
    "situation": "string",
    "value": "float64",
    "n_frames": "int64",
    "seconds": "float64",
    "code": "string",
}
ALL = "all"
_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@functools.cache
def code_version() -> str:
    """This scenesift's version, plus the git commit when it runs from a checkout
    ('0.1.0+g1c6910c2ab', '.dirty' when the package's files differ from that commit)."""
    from scenesift import __version__

    package = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(package), *args], capture_output=True,
                              text=True, timeout=20, check=True)  # fmt: skip
        return done.stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        if package.parent != top / "src":  # a site-packages inside some other repository
            return __version__
        sha = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"


#: Longest run file stem: file systems allow 255 bytes a name.
RUN_FILE_CHARS = 200


def run_file(directory: Path, run: str) -> Path:
    return Path(directory) / f"{fit_name(_SAFE.sub('_', run), RUN_FILE_CHARS)}.parquet"


def frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly ``COLUMNS`` (missing optional cells filled)."""
    defaults = {"class": ALL, "situation": ALL, "fraction": float("nan"), "round": 0,
                "n_frames": 0, "seconds": float("nan"), "code": code_version()}  # fmt: skip
    records = [{**defaults, **row} for row in rows]
    missing = [c for c in COLUMNS if records and c not in records[0]]
    if missing:
        raise ValueError(f"result rows lack column(s) {', '.join(missing)}")
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.astype(COLUMNS)


def append_run(directory: Path, run: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one finished run's rows atomically."""
    df = frame(rows)
    path = run_file(directory, run)
    with atomic_write(path, "wb") as f:
        df.to_parquet(f, index=False)
    return path


def finished_runs(directory: Path) -> set[str]:
    """Run ids already in the table (read from the files, so a resumed experiment trusts
    only what was completely written)."""
    directory = Path(directory)
    if not directory.exists():
        return set()
    return {
        str(r)
        for p in sorted(directory.glob("*.parquet"))
        for r in pd.read_parquet(p, columns=["run"])["run"].unique()
    }


def read_results(directory: Path) -> pd.DataFrame:
    """The whole table (empty with the right columns when nothing finished yet)."""
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        return frame([])
    return pd.concat([_read(p) for p in files], ignore_index=True).astype(COLUMNS)


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    if "code" not in df:  # written before the column existed
        df["code"] = ""
    return df


def latest_results(project: Path, experiment: str | None = None) -> pd.DataFrame | None:
    """The results table of ``experiment`` (default: the one with the latest finished
    run); None when no experiment has finished a run. A named experiment without
    results is a ``StoreError`` listing those with results."""
    from scenesift.errors import StoreError
    from scenesift.experiments.runners import RESULTS_DIR

    root = Path(project) / RESULTS_DIR
    found = sorted(
        (p for p in root.glob("*/results") if any(p.glob("*.parquet"))),
        key=lambda p: p.stat().st_mtime,
    )
    if experiment is not None:
        chosen = root / experiment / "results"
        if chosen not in found:
            names = ", ".join(p.parent.name for p in found) or "none"
            raise StoreError(f"no results for experiment {experiment!r} (found: {names})")
        found = [chosen]
    return read_results(found[-1]) if found else None
