"""Kill -9 at random points of real ``scenesift`` processes, resume, and lose nothing.

One scenario, run twice: uninterrupted (in this process, the reference) and as real CLI
processes killed with SIGKILL, each kill followed by the integrity check and a resume:

  import bdd (--as oracle) -> embed (tiny backbone) -> a simulated campaign (al start,
  al resume) -> a human campaign whose batches come back through al import-labels

Kills are chosen by a seeded RNG among: a crash point (``scenesift.crashpoints``: the
moment before or after the N-th commit of the process) or a random delay after launch.
At the end both projects must hold the same frames, states, labels (no label lost or
duplicated), boxes, feature values, picks and round metrics. The default run kills at
least 20 times; ``-m soak`` (``make soak``) runs a longer one with three times as many kill points.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from al_fixtures import make_frames
from scenesift.cli import app
from scenesift.io.bdd import write_bdd
from scenesift.io.labelstudio import write_labelstudio_tasks
from scenesift.store import Store
from scenesift.store.integrity import check

pytestmark = pytest.mark.usefixtures("one_thread")

#: Several shards per embedding run (kills between them keep finished work); a multiple of
#: embed's --batch-size 8, so that each shard holds exactly this many frames.
SHARD_FRAMES = 24
CAMPAIGN = """
initial = {initial}
batch = 4
seed = 3
strategy = {{ name = "least_confidence" }}
stopping = {{ max_rounds = {rounds} }}
labeler = "{labeler}"
[learner]
min_score = 0.0
slices = false
[learner.detector]
backbone = "tiny"
input_size = [64, 96]
batch_size = 8
width = 16
epochs = 2
lr = 0.01
"""
#: Runs a real CLI process with smaller feature shards (a test setting, nothing else).
ENTRY = (
    "import sys; import scenesift.features.cache as f; "
    f"f.SHARD_FRAMES = {SHARD_FRAMES}; from scenesift.cli import main; "
    "sys.argv[0] = 'scenesift'; main()"
)


@dataclass
class Scenario:
    """The data and settings both runs share."""

    labels: Path
    sim: Path
    human: Path
    exports: Path
    human_rounds: int


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """120 frames in 60 drives as a BDD100K JSON, images beside it."""
    root = tmp_path_factory.mktemp("crash-data")
    return write_bdd(make_frames(root / "images", n=120), root / "labels.json")


def scenario(root: Path, labels: Path, sim_rounds: int, human_rounds: int) -> Scenario:
    sim, human = root / "sim.toml", root / "human.toml"
    sim.write_text(CAMPAIGN.format(initial=8, rounds=sim_rounds, labeler="oracle"))
    human.write_text(CAMPAIGN.format(initial=6, rounds=human_rounds, labeler="labelstudio"))
    (root / "exports").mkdir()
    return Scenario(labels, sim, human, root / "exports", human_rounds=human_rounds)


def export_for(project: Path, name: str, out: Path) -> tuple[Path, int]:
    """What annotators send back for the waiting round: the held-back truth of its picks,
    as a Label Studio export (pre-annotations accepted as annotations)."""
    with Store.open(project) as store:
        idx = store.conn.execute(
            "SELECT max(r.idx) FROM rounds r JOIN campaigns c ON c.id = r.campaign_id "
            "WHERE c.name = ? AND r.status = 'selected'",
            (name,),
        ).fetchone()[0]
        tasks = json.loads((project / "campaigns" / name / f"round-{idx:03d}" / "tasks.json")
                           .read_text())  # fmt: skip
        names = {t["data"]["frame"] for t in tasks}
        truth = [r for r in store.records(source="oracle") if r.name in names]
        taxonomy = store.taxonomy
    folder = out / f"{name}-{idx}"
    write_labelstudio_tasks(truth, taxonomy, folder, prefill_with_labels=True)
    done = []
    for task in json.loads((folder / "tasks.json").read_text()):
        result = task["predictions"][0]["result"] if task["predictions"] else []
        task["annotations"] = [{"id": 1, "result": result, "was_cancelled": False,
                                "updated_at": "2026-11-21T10:00:00Z"}]  # fmt: skip
        task["predictions"] = []
        done.append(task)
    path = folder / "export.json"
    path.write_text(json.dumps(done))
    return path, idx


def waiting(project: Path, name: str, idx: int) -> bool:
    """Whether round ``idx`` of campaign ``name`` still waits for its labels."""
    with Store.open(project) as store:
        row = store.conn.execute(
            "SELECT r.status FROM rounds r JOIN campaigns c ON c.id = r.campaign_id WHERE "
            "c.name = ? AND r.idx = ?",
            (name, idx),
        ).fetchone()
    return row is not None and row[0] == "selected"


# ----------------------------------------------------------------------------- reference
def reference(project: Path, s: Scenario, monkeypatch) -> None:
    """The scenario without interruption, through the same CLI, in this process."""
    import scenesift.features.cache as cache
    import scenesift.features.memory as memory

    monkeypatch.setattr(cache, "SHARD_FRAMES", SHARD_FRAMES)
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: False)  # pytest's process
    runner = CliRunner()

    def cli(*args: object) -> None:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    cli("init", project, "--split", "0.6,0.15,0.25")
    cli("import", "bdd", s.labels, "-p", project, "--as", "oracle")
    cli("embed", "-p", project, "--backbone", "tiny", "--batch-size", "8")
    cli("al", "start", "sim", "-p", project, "--config", s.sim)
    cli("al", "start", "people", "-p", project, "--config", s.human)
    for _ in range(s.human_rounds):
        export, _ = export_for(project, "people", s.exports)
        cli("al", "import-labels", "people", export, "-p", project)


# ----------------------------------------------------------------------------- victim
@dataclass
class Killer:
    """Launches CLI processes and kills them at points drawn from a seeded RNG."""

    project: Path
    rng: np.random.Generator
    kills: list[str] = field(default_factory=list)
    runs: list[tuple[str, str, float]] = field(default_factory=list)  # command, end, s

    def run(self, args: list[str], kill: tuple[str, int] | float | None) -> bool:
        """Run ``scenesift ARGS``; ``kill`` is a crash point (name, n), a delay in seconds
        or None. Returns whether the process was killed (else it must have succeeded)."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("SCENESIFT_CRASH_AT", None)
        if isinstance(kill, tuple):
            env["SCENESIFT_CRASH_AT"] = f"{kill[0]}:{kill[1]}"
        cmd = [sys.executable, "-c", ENTRY, *args, "-p", str(self.project)]
        log = self.project.parent / "victim.log"
        with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall it
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            started = time.perf_counter()
            try:
                proc.wait(timeout=kill if isinstance(kill, float) else None)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            killed = proc.returncode == -signal.SIGKILL
            how = "finished" if not killed else kill[0] if isinstance(kill, tuple) else "timed"
            self.runs.append((" ".join(args[:2]), how, time.perf_counter() - started))
        if proc.returncode == -signal.SIGKILL:
            self.kills.append(f"{args[0]} {args[1]} at {kill}")
            self.assert_intact()
            return True
        assert proc.returncode == 0, f"{args}: {log.read_text()[-3000:]}"
        return False

    def assert_intact(self) -> None:
        with Store.open(self.project) as store:
            report = check(store)
        assert report.ok, (self.kills[-1], report.problems())

    def step(self, quota: int, next_args: Callable[[], list[str] | None],
             kill: Callable[[], tuple[str, int] | float]) -> None:  # fmt: skip
        """Run the step's next command (``next_args``; None once the step is done) and kill
        it, until ``quota`` runs were killed or the step is done; then finish it."""
        killed = attempts = 0
        while killed < quota and attempts < 3 * quota and (args := next_args()) is not None:
            killed += self.run(args, kill())
            attempts += 1
        while (args := next_args()) is not None:
            assert not self.run(args, None)

    def crash_point(self, most: int, committed_too: bool = True) -> tuple[str, int]:
        """Before (``commit``) or after (``committed``) one of the first ``most`` commits."""
        after = committed_too and self.rng.random() < 0.5
        return ("committed" if after else "commit", int(self.rng.integers(1, most + 1)))

    def timed_or_point(self, most: int, delays: tuple[float, float]) -> tuple[str, int] | float:
        """A fifth of the kills after a random delay, the rest at a crash point."""
        if self.rng.random() < 1 / 5:
            return float(self.rng.uniform(*delays))
        return self.crash_point(most)

    def query(self, sql: str, *args: object) -> tuple | None:
        with Store.open(self.project) as store:
            return store.conn.execute(sql, args).fetchone()


def victim(project: Path, s: Scenario, rng: np.random.Generator, scale: int) -> Killer:
    k = Killer(project, rng)
    Store.init(project, split_fractions=(0.6, 0.15, 0.25)).close()

    # import: one transaction per run, so every crash point lands (a re-run changes nothing)
    imports = iter(range(10 * scale))  # a run that finished before its delay is spare
    k.step(
        9 * scale,
        lambda: (
            ["import", "bdd", str(s.labels), "--as", "oracle"]
            if next(imports, None) is not None
            else None
        ),
        lambda: k.crash_point(1) if rng.random() < 0.7 else float(rng.uniform(0.3, 1.5)),
    )

    # embed: one transaction per shard; kill before or after one of those still to write
    def shards_left() -> int:
        cached = k.query("SELECT count(*) FROM features")[0]
        return -(-(k.query("SELECT count(*) FROM frames")[0] - cached) // SHARD_FRAMES)

    def embed_kill() -> tuple[str, int]:
        left = shards_left()
        point = k.crash_point(left - 1 if left > 1 else 1, committed_too=left > 1)
        return point if point[0] == "committed" else ("commit", int(rng.integers(1, left + 1)))

    k.step(
        4 * scale,
        lambda: ["embed", "--backbone", "tiny", "--batch-size", "8"] if shards_left() else None,
        embed_kill,
    )

    # campaigns: start (or resume, once it exists) until it finishes or waits for labels
    def campaign(name: str, config: Path, done: str) -> Callable[[], list[str] | None]:
        def next_args() -> list[str] | None:
            row = k.query("SELECT status FROM campaigns WHERE name = ?", name)
            if row is None:
                return ["al", "start", name, "--config", str(config)]
            return None if row[0] == done else ["al", "resume", name]

        return next_args

    k.step(4 * scale, campaign("sim", s.sim, "finished"), lambda: k.timed_or_point(2, (1, 4)))
    k.step(2 * scale, campaign("people", s.human, "waiting"), lambda: k.timed_or_point(2, (1, 3)))

    # labels coming back: import-labels until the round has them, then resume to the next
    for _ in range(s.human_rounds):
        export, idx = export_for(project, "people", s.exports)

        def next_args(export: Path = export, idx: int = idx) -> list[str] | None:
            if waiting(project, "people", idx):
                return ["al", "import-labels", "people", str(export)]
            status = k.query("SELECT status FROM campaigns WHERE name = 'people'")[0]
            return ["al", "resume", "people"] if status == "running" else None

        k.step(3 * scale, next_args, lambda: k.timed_or_point(2, (1, 4)))
    return k


# ----------------------------------------------------------------------------- compare
def contents(project: Path) -> dict[str, object]:
    """Everything the scenario writes, keyed by names (ids and times differ by run)."""
    with Store.open(project) as store:
        c = store.conn
        q = lambda sql: sorted(c.execute(sql).fetchall())  # noqa: E731
        out: dict[str, object] = {
            "frames": q("SELECT f.name, f.drive, d.split, f.state, f.width, f.height, "
                        "r.idx FROM frames f JOIN drives d ON d.name = f.drive "
                        "LEFT JOIN rounds r ON r.id = f.selected_round"),
            "labels": q("SELECT f.name, l.situation, l.source, l.value, l.confidence "
                        "FROM situation_labels l JOIN frames f ON f.id = l.frame_id"),
            "box sets": q("SELECT f.name, b.source FROM box_sets b "
                          "JOIN frames f ON f.id = b.frame_id"),
            "boxes": q("SELECT f.name, b.source, b.category, b.x1, b.y1, b.x2, b.y2, b.score, "
                       "b.class_probs FROM boxes b JOIN frames f ON f.id = b.frame_id"),
            "picks": q("SELECT c.name, r.idx, f.name, p.rank, p.score, p.strategy FROM picks p "
                       "JOIN rounds r ON r.id = p.round_id JOIN campaigns c "
                       "ON c.id = r.campaign_id JOIN frames f ON f.id = p.frame_id"),
            "campaigns": q("SELECT name, status, config FROM campaigns"),
            "counts": q("SELECT * FROM count_labels WHERE n != 0"),
        }  # fmt: skip
        rounds = c.execute(
            "SELECT c.name, r.idx, r.status, r.model_fingerprint, r.metrics FROM rounds r "
            "JOIN campaigns c ON c.id = r.campaign_id ORDER BY c.name, r.idx"
        ).fetchall()
        out["rounds"] = [
            (name, idx, status, fp, {k: v for k, v in json.loads(m).items() if k != "seconds"})
            for name, idx, status, fp, m in rounds
        ]
        features = {}
        for spec, name, shard, row in c.execute(
            "SELECT x.spec, f.name, x.shard, x.row FROM features x "
            "JOIN frames f ON f.id = x.frame_id"
        ):
            features[(spec, name)] = np.asarray(store.arrays.get(shard)[row])
        out["features"] = features
    return out


def assert_same(got: dict, want: dict) -> None:
    for key in want:
        if key == "features":
            assert sorted(got[key]) == sorted(want[key])
            for k, v in want[key].items():
                np.testing.assert_allclose(got[key][k], v, rtol=1e-5, atol=1e-6, err_msg=str(k))
        else:
            assert got[key] == want[key], key


def crash_run(tmp_path: Path, s: Scenario, monkeypatch, seed: int, scale: int) -> Killer:
    started = time.perf_counter()
    reference(tmp_path / "reference", s, monkeypatch)
    print(f"\nreference: {time.perf_counter() - started:.0f} s")
    want = contents(tmp_path / "reference")
    assert (
        want["picks"]
        and want["features"]
        and any(src == "human" for _, _, src, _, _ in want["labels"])
    )
    k = victim(tmp_path / "victim", s, np.random.default_rng(seed), scale)
    k.assert_intact()
    assert_same(contents(tmp_path / "victim"), want)
    print(f"{len(k.kills)} kills in {len(k.runs)} runs, {time.perf_counter() - started:.0f} s "
          "in all (pytest -s prints this table)\n")  # fmt: skip
    print("| command | runs | killed before a commit | after a commit | after a delay "
          "| finished | seconds |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
    for command in dict.fromkeys(c for c, _, _ in k.runs):
        ends = [e for c, e, _ in k.runs if c == command]
        spent = sum(t for c, _, t in k.runs if c == command)
        cells = [ends.count(e) for e in ("commit", "committed", "timed", "finished")]
        print(f"| `{command}` | {len(ends)} | {' | '.join(map(str, cells))} | {spent:.0f} |")
    return k


def test_kill_9_at_20_points_loses_and_duplicates_no_label(tmp_path, dataset, monkeypatch):
    s = scenario(tmp_path, dataset, sim_rounds=2, human_rounds=2)
    k = crash_run(tmp_path, s, monkeypatch, seed=0, scale=1)
    assert len(k.kills) >= 20
    steps = {kill.split(" at ")[0] for kill in k.kills}
    assert steps >= {"import bdd", "embed --backbone", "al start", "al import-labels"}, steps


@pytest.mark.soak
def test_kill_9_at_60_points(tmp_path, dataset, monkeypatch):
    """Three times the kill points, on longer campaigns (8 simulated rounds, 4 human)."""
    s = scenario(tmp_path, dataset, sim_rounds=8, human_rounds=4)
    k = crash_run(tmp_path, s, monkeypatch, seed=1, scale=3)
    assert len(k.kills) >= 60
