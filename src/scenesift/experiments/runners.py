"""Execute an experiment's runs: a local process pool by default, or Ray.

Only the parent process writes results (one Parquet file per finished run, see
``results``), so workers need no coordination and a Ray worker on another machine needs
only the project folder at the same path (a shared file system). Finished runs are
skipped: re-running an experiment continues where it stopped.

Before dispatching, the parent fills the feature cache for every frame the runs read,
so workers never compute (and race to write) the same features.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from scenesift.errors import ConfigError, StoreError
from scenesift.experiments.config import ExperimentConfig
from scenesift.experiments.results import (
    ALL,
    append_run,
    code_version,
    finished_runs,
    read_results,
)
from scenesift.experiments.studies import RunSpec, execute, plan

RESULTS_DIR = Path("experiments")


@dataclass
class RunsDone:
    """What ``on_progress`` hears after each finished run (``run`` None: the resumed start)."""

    done: int
    total: int
    run: str | None
    seconds: float


def results_dir(project: Path, config: ExperimentConfig) -> Path:
    return Path(project) / RESULTS_DIR / config.name / "results"


# Settings that only add runs, each defined as before: raising them extends an experiment
# (more seeds for a tighter p-value) instead of starting a new one. Everything else changes
# what a run computes, so it must match the stored settings exactly.
_GROWS_COUNT = {("variance", "repeats"), ("strategies", "seeds"), ("tagger", "seeds")}
_GROWS_LIST = {("variance", "fractions"), ("strategies", "strategies"), ("tagger", "strategies")}
# Learner settings that only add pool outputs of the round's model: ``learner_for`` gives
# them only to the campaigns whose strategy reads them, so changing them leaves every run
# of a strategy that does not read them as it was.
_OUTPUTS_ONLY = ("ensemble", "tta", "situations")


def _extends(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``wanted`` plans every run ``stored`` planned, each with the same settings."""
    if stored.keys() != wanted.keys():
        return False
    for key in stored:
        old, new = stored[key], wanted[key]
        if key == "studies":
            if not set(old) <= set(new):
                return False
        elif key == "learner":
            if not _same_runs_learner(stored, old, new):
                return False
        elif isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
            for field in old:
                a, b = old[field], new[field]
                if (key, field) in _GROWS_COUNT:
                    if b < a:
                        return False
                elif (key, field) in _GROWS_LIST:
                    if any(x not in b for x in a):
                        return False
                elif a != b:
                    return False
        elif old != new:
            return False
    return True


def _same_runs_learner(stored: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the stored runs would train and read the same under learner ``new`` as under
    ``old``: so a study can take in a strategy that needs an ensemble, the flipped pass or
    the round's tagger (``box_disagreement``, ``localization_stability``,
    ``balance_situations``) without a new name, as long as no
    strategy it already ran reads the changed output. (The variance study's trainings read
    neither: one member, no pool outputs.)"""
    from scenesift.al.learners import learner_for
    from scenesift.al.strategies import make_strategy

    def rest(learner: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in learner.items() if k not in _OUTPUTS_ONLY}

    if rest(old) != rest(new):
        return False
    ran = stored["strategies"]["strategies"] if "strategies" in stored["studies"] else []
    return all(
        learner_for(make_strategy(spec), old) == learner_for(make_strategy(spec), new)
        for spec in ran
    )


def _check_same_experiment(project: Path, config: ExperimentConfig) -> None:
    """Results of one name must come from one config: resuming with different settings
    would silently pool runs that are not comparable. Settings that only add runs (more
    seeds, repeats, strategies or fractions, or a learner output only new strategies read)
    extend the experiment."""
    import json

    from scenesift.files import write_json

    path = Path(project) / RESULTS_DIR / config.name / "experiment.json"
    # where runs execute does not change their results
    wanted = json.loads(json.dumps({k: v for k, v in config.to_dict().items() if k != "runner"}))
    if path.exists():
        stored = json.loads(path.read_text())
        if stored == wanted:
            return
        if not _extends(stored, wanted):
            raise ConfigError(
                f"experiment {config.name!r} already has results from other settings "
                f"({path}); only more seeds, repeats, strategies or fractions (or a learner "
                f"{', '.join(_OUTPUTS_ONLY)} that only new strategies read) extend it. "
                f"Give this one another name, or remove it with "
                f"`scenesift experiment remove {config.name}`"
            )
    write_json(path, wanted)


@dataclass
class Progress:
    """What ``experiment show`` reports: finished runs of the planned ones, and where."""

    config: ExperimentConfig
    done: int
    total: int
    results: Path
    #: the unfinished runs at the finished ones' mean wall time per study; None when a
    #: study with runs left has none finished to estimate from
    seconds_left: float | None = None


def _seconds_left(results, todo: list[RunSpec]) -> float | None:
    """Remaining runs times their study's mean run time so far (a run's time: the sum of
    its rounds' ``seconds``, read once per round from the headline rows)."""
    head = results.loc[(results["metric"] == "map50") & (results["class"] == ALL)
                       & (results["situation"] == ALL)]  # fmt: skip
    per_run = head.groupby(["study", "run"], observed=True)["seconds"].sum()
    left = 0.0
    for study in {r.study for r in todo}:
        if study not in per_run.index.get_level_values("study"):
            return None
        left += float(per_run.loc[study].mean()) * sum(r.study == study for r in todo)
    return left


def stored_experiment(root: Path, name: str, where: Path | None = None) -> dict[str, Any]:
    """Experiment ``name``'s stored settings (``root/name/experiment.json``); a
    ``StoreError`` listing the experiments ``root`` has (said to be ``in where``, when
    given) when there is none."""
    import json

    path = Path(root) / name / "experiment.json"
    if not path.exists():
        found = sorted(p.parent.name for p in Path(root).glob("*/experiment.json"))
        place = f" in {where}" if where is not None else ""
        raise StoreError(f"no experiment {name!r}{place} (found: {', '.join(found) or 'none'})")
    return json.loads(path.read_text())


def experiment_progress(project: Path, name: str) -> Progress:
    """An experiment's finished runs against its stored plan, read without running or
    locking anything (so it can watch one that is running)."""

    stored = stored_experiment(Path(project) / RESULTS_DIR, name, where=project)
    config = ExperimentConfig.from_dict(stored)
    out = results_dir(project, config)
    planned = plan(config)
    done = finished_runs(out)
    todo = [r for r in planned if r.run not in done]
    left = _seconds_left(read_results(out), todo) if todo else 0.0
    return Progress(config, len(planned) - len(todo), len(planned), out, left)


def remove_experiment(project: Path, name: str) -> int:
    """Delete an experiment's results and its campaigns; returns campaigns removed."""
    import shutil

    from scenesift.store import Store, campaigns

    with Store.open(project) as store:
        n = campaigns.remove_prefixed(store, f"{name}:")
    shutil.rmtree(Path(project) / RESULTS_DIR / name, ignore_errors=True)
    return n


def prepare(project: Path, config: ExperimentConfig, progress: bool = True) -> None:
    """Cache the backbone pyramid (and pooled features: of the pool for diversity
    strategies, of the pool and the validation split for the round's situation tagger)
    of every frame the runs will read, once, in this process."""
    from scenesift.al.learners import DetectorLearner, make_learner
    from scenesift.features import embed
    from scenesift.store import Store

    detector = {"variance", "strategies"} & set(config.studies)
    with Store.open(project) as store:
        backbone = DetectorLearner(**config.learner).backbone(
            list(store.records(split=config.pool_split)) if detector else ()
        )
        for split in {config.pool_split, "val", config.eval_split} if detector else ():
            embed(store, backbone, split=split, layer="pyramid", progress=progress)
        specs = config.strategies.specs() if "strategies" in config.studies else []
        pooled = set()
        if _reads(specs, "embeddings"):
            pooled.add(config.pool_split)
        if _reads(specs, "situation_scores"):  # the round's tagger (learner_for) fits on val
            pooled |= {config.pool_split, "val"}
        for split in sorted(pooled):
            embed(store, backbone, split=split, layer="pooled", progress=progress)
        if "tagger" in config.studies:  # the tagger heads read pooled features of every split
            tagger = make_learner({**config.tagger.learner, "kind": "tagger"}).backbone()
            for split in {config.pool_split, "val", config.eval_split}:
                embed(store, tagger, split=split, layer="pooled", progress=progress)


def _reads(specs: list[dict], field: str) -> bool:
    """Whether any strategy reads Pool ``field`` (pooled features are read as embeddings
    by diversity strategies and by the round's tagger for ``situation_scores``): embedding
    a large pool costs minutes that uncertainty-only studies would spend for nothing."""
    from scenesift.al.strategies import make_strategy

    return any(field in make_strategy(spec).required_fields() for spec in specs)


def run_experiment(
    project: Path,
    config: ExperimentConfig,
    on_progress: Callable[[RunsDone], None] | None = None,
    prepare_features: bool = True,
    first: Sequence[str] = (),
) -> Path:
    """Run every unfinished run; return the results folder. One process at a time runs an
    experiment: a second would start the same runs (`experiment show` watches one).
    ``first``: strategies (a label as `experiment show` lists it, or a strategy's name)
    whose campaigns run before the others, seed by seed: to complete the seeds of the
    strategy a decision waits on when there is not time for all; or a study's name, whose
    runs go first."""
    from filelock import FileLock, Timeout

    root = Path(project) / RESULTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / f".{config.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(
            f"experiment {config.name!r} is already running on {project} (another process "
            f"holds {lock.lock_file}); see what it has finished with "
            f"`scenesift experiment show {config.name} -p {project}`"
        ) from None
    try:
        return _run_unlocked(project, config, on_progress, prepare_features, first)
    finally:
        lock.release()


def _run_unlocked(
    project: Path, config: ExperimentConfig, on_progress, prepare_features, first=()
) -> Path:
    _check_same_experiment(project, config)
    code_version()  # now, not at the first finished run: the code may change while runs run
    out = results_dir(project, config)
    done = finished_runs(out)
    planned = plan(config)
    wanted = _first(planned, first)
    todo = sorted((r for r in planned if r.run not in done),
                  key=lambda r: (r.run not in wanted, *_order(r)))  # fmt: skip
    total = len(done) + len(todo)
    if on_progress is not None:
        on_progress(RunsDone(len(done), total, None, 0.0))
    if not todo:
        return out
    if prepare_features:
        prepare(project, config, progress=on_progress is not None)
    engine = _ray if config.runner.engine == "ray" else _local
    finished = len(done)
    for run, rows, seconds in engine(Path(project).resolve(), config, todo):
        append_run(out, run.run, rows)
        finished += 1
        if on_progress is not None:
            on_progress(RunsDone(finished, total, run.run, seconds))
    return out


def _first(planned: list[RunSpec], first: Sequence[str]) -> set[str]:
    """The runs ``first`` names: a study's (``variance``: the violins, e.g. so that short
    runs fill the end of a session a campaign would not finish in), or a campaign
    strategy's (its label, or a strategy's name for every label of it); an entry naming
    none is refused, listing what it can name."""
    labels = sorted({r.strategy for r in planned if r.study != "variance"})
    studies = sorted({r.study for r in planned})
    wanted: set[str] = set()
    for entry in first:
        hits = {r.run for r in planned if r.study == entry or (
            r.study != "variance" and (r.strategy == entry or r.strategy.split("(", 1)[0] == entry)
        )}  # fmt: skip
        if not hits:
            raise ConfigError(
                f"--first {entry!r} names no study or strategy of this experiment; its "
                f"studies: {', '.join(studies)}; its strategies: {', '.join(labels) or 'none'}"
            )
        wanted |= hits
    return wanted


def _order(run: RunSpec) -> tuple[int, float]:
    """What every comparison needs first: the full-data trainings (the 95% target), then
    the campaigns seed by seed (an experiment stopped early holds every strategy on the
    same seeds, so its comparisons stay paired), then the other random subsets, largest
    first. Long runs first also keeps a process pool's last workers from waiting on one."""
    if run.study != "variance":
        return (1, run.seed)
    return (0 if run.fraction >= 1.0 else 2, -run.fraction)


def _timed(project: Path, config: dict[str, Any], run: RunSpec, threads: int):
    import torch

    from scenesift.features.memory import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()
    started = time.perf_counter()
    rows = execute(project, config, run)
    return run, rows, time.perf_counter() - started


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _local(project: Path, config: ExperimentConfig, todo: list[RunSpec]) -> Iterator:
    workers = min(config.runner.workers, len(todo))
    data, threads = config.to_dict(), _threads(workers)
    if workers == 1:
        for run in todo:
            yield _timed(project, data, run, threads)
        return
    # spawn: torch and forked OpenMP thread pools do not mix
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        pending = {pool.submit(_timed, project, data, run, threads) for run in todo}
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                yield future.result()


def _die_with_parent(parent: int) -> None:
    """A worker ends when the experiment's process dies (Ctrl-C, kill -9): otherwise it
    would finish its run, then wait forever as an orphan, holding its cores. Linux only
    (prctl PR_SET_PDEATHSIG, then a check that the parent did not die before it was set);
    elsewhere a no-op."""
    import contextlib
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)


def _ray(project: Path, config: ExperimentConfig, todo: list[RunSpec]) -> Iterator:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is an optional extra
        raise RuntimeError("the ray engine needs Ray: pip install 'scenesift[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=config.runner.address,
            num_cpus=None if config.runner.address else config.runner.workers,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        remote = ray.remote(num_cpus=1)(_timed)
        data, threads = config.to_dict(), _threads(config.runner.workers)
        pending = [remote.remote(project, data, run, threads) for run in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if started_here:
            ray.shutdown()
