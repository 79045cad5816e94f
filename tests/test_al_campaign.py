"""Campaigns: rounds persisted in the store, simulated and human labelling, resuming."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import ClassVar

import numpy as np
import pytest

from al_fixtures import (
    LEARNER,
    TAGGER_LEARNER,
    campaign_config,
    filled_fields,
    make_frames,
    opened_oracle_project,
)
from scenesift.al.campaign import Campaign, CampaignConfig
from scenesift.al.learners import DetectorLearner, make_learner
from scenesift.al.pool import Learner
from scenesift.records import ImportBatch, ImportReport
from scenesift.store import Store, StoreError
from scenesift.store import campaigns as catalog

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    with opened_oracle_project(tmp_path) as store:
        yield store


def config(**kw) -> CampaignConfig:
    return campaign_config(**{"learner": LEARNER, **kw})


def picks(store: Store, name: str) -> list[tuple[int, int, int]]:
    return store.conn.execute(
        "SELECT r.idx, p.frame_id, p.rank FROM picks p JOIN rounds r ON r.id = p.round_id "
        "JOIN campaigns c ON c.id = r.campaign_id WHERE c.name = ? ORDER BY r.idx, p.rank",
        (name,),
    ).fetchall()


def test_simulated_campaign_grows_its_labelled_set_round_by_round(project):
    campaign = Campaign.create(project, "sim", config())
    result = campaign.run()
    assert result.status == "finished" and "max_rounds" in result.reason
    rounds = result.rounds
    # round 0 picks the random initial set; rounds 1-2 train, evaluate and pick a batch;
    # round 3 trains, evaluates and stops
    assert [r.status for r in rounds] == ["labelled", "labelled", "labelled", "final"]
    assert [r.n_picks for r in rounds] == [6, 4, 4, 0]
    assert [r.n_labelled for r in rounds[1:]] == [6, 10, 14]
    assert all(0.0 <= r.metrics["map50"] <= 1.0 for r in rounds[1:])
    assert all(r.model_fingerprint for r in rounds[1:])
    assert len(campaign.curve()) == 3
    chosen = [fid for _, fid, _ in picks(project, "sim")]
    assert len(chosen) == len(set(chosen)) == 14
    splits = {
        s for (s,) in project.conn.execute(
            f"SELECT d.split FROM frames f JOIN drives d ON d.name = f.drive "
            f"WHERE f.id IN ({','.join(map(str, chosen))})"
        )
    }  # fmt: skip
    assert splits == {"train"}
    # the simulated oracle reveals truth to the campaign only: nothing else is labelled
    states = project.conn.execute("SELECT DISTINCT state FROM frames").fetchall()
    assert states == [("unlabelled",)]
    assert Campaign.open(project, "sim").run().status == "finished"  # idempotent


def test_per_situation_metrics_are_recorded_every_round(project):
    rounds = Campaign.create(project, "slices", config()).run().rounds
    per_situation = rounds[1].metrics["map50_per_situation"]
    assert per_situation["night"]["n_frames"] > 0
    only_night = config(learner={**LEARNER, "slices": ["night"]})
    rounds = Campaign.create(project, "night", only_night).run().rounds
    assert set(rounds[1].metrics["map50_per_situation"]) == {"night"}


def test_a_campaign_resumed_after_each_round_picks_exactly_what_an_uninterrupted_one_does(
    project,
):
    Campaign.create(project, "straight", config(seed=3)).run()
    Campaign.create(project, "stepwise", config(seed=3))
    while True:  # a fresh object each time: nothing survives in memory between rounds
        result = Campaign.open(project, "stepwise").run(max_rounds=1)
        if result.status == "finished":
            break
    strip = [(i, f, r) for i, f, r in picks(project, "straight")]
    assert picks(project, "stepwise") == strip
    a = [r.metrics["map50"] for r in Campaign.open(project, "straight").rounds()[1:]]
    b = [r.metrics["map50"] for r in Campaign.open(project, "stepwise").rounds()[1:]]
    assert a == b


def test_an_interrupted_round_is_recomputed_without_double_picks(project, monkeypatch):
    campaign = Campaign.create(project, "crash", config())
    campaign.run(max_rounds=1)  # round 0 (initial set) played
    calls = {"n": 0}
    original = Campaign._finish_round

    def crash(self, *args, **kwargs):
        calls["n"] += 1
        raise KeyboardInterrupt  # dies before the round's transaction

    monkeypatch.setattr(Campaign, "_finish_round", crash)
    with pytest.raises(KeyboardInterrupt):
        Campaign.open(project, "crash").run()
    monkeypatch.setattr(Campaign, "_finish_round", original)
    assert calls["n"] == 1
    assert [r.status for r in campaign.rounds()] == ["labelled", "created"]
    Campaign.open(project, "crash").run()
    chosen = [fid for _, fid, _ in picks(project, "crash")]
    assert len(chosen) == len(set(chosen)) == 14


def test_stopping_rules_end_the_campaign_with_a_reason(project):
    result = Campaign.create(project, "tgt", config(stopping={"target": 0.0})).run()
    assert [r.status for r in result.rounds] == ["labelled", "final"]
    assert result.reason.startswith("target reached")
    result = Campaign.create(project, "bud", config(stopping={"budget": 12})).run()
    assert result.rounds[-1].n_labelled == 10 and "budget" in result.reason


def test_the_pool_running_dry_ends_the_campaign(project):
    n_train = len([r for r in project.records(split="train")])
    result = Campaign.create(project, "dry", config(batch=50, stopping={})).run()
    assert result.reason == "the pool is exhausted"
    assert result.rounds[-1].n_labelled == n_train


def export_annotated(tasks_json, out, drop=()):
    """What Label Studio exports after annotators accepted every pre-annotation."""
    tasks = json.loads(tasks_json.read_text())
    done = []
    for t in tasks:
        if t["data"]["frame"] in drop:
            continue
        result = t["predictions"][0]["result"] if t.get("predictions") else []
        t["annotations"] = [{"id": 1, "result": result, "was_cancelled": False,
                             "updated_at": "2026-11-21T10:00:00Z"}]  # fmt: skip
        done.append(t)
    out.write_text(json.dumps(done))
    return out


def test_human_round_trip_through_label_studio(project, tmp_path):
    # human campaigns train on what is labelled in the store: label a few frames first
    names = [r.name for r in project.records(split="train")][:6]
    project.conn.execute(
        f"UPDATE frames SET state = 'labelled' WHERE name IN ({','.join('?' * len(names))})",
        names,
    )
    project.ingest(
        ImportBatch(
            [r for r in make_frames(tmp_path / "data") if r.name in names],
            tmp_path / "data",
            ImportReport("seed labels"),
        ),
        label_source="import",
    )
    campaign = Campaign.create(project, "human", config(labeler="labelstudio"))
    result = campaign.run()
    assert result.status == "waiting" and "import-labels" in result.reason
    rnd = result.rounds[-1]
    assert rnd.status == "selected" and rnd.n_labelled == 6 and rnd.n_picks == 4
    selected = project.conn.execute(
        "SELECT count(*) FROM frames WHERE state = 'selected' AND selected_round = ?", (rnd.id,)
    ).fetchone()[0]
    assert selected == 4
    tasks = campaign.folder / "round-000" / "tasks.json"
    assert len(json.loads(tasks.read_text())) == 4
    assert (campaign.folder / "round-000" / "labeling_config.xml").exists()
    assert campaign.run().status == "waiting"  # nothing to do until labels come back

    picked = [t["data"]["frame"] for t in json.loads(tasks.read_text())]
    first = export_annotated(tasks, tmp_path / "part.json", drop=picked[2:])
    assert campaign.import_labels(first) == (2, 2)
    assert campaign.rounds()[-1].status == "selected"  # half the batch is still out

    def versions() -> list[int]:
        rows = dict(project.conn.execute("SELECT name, label_version FROM frames"))
        return [rows[n] for n in picked[:2]]

    assert versions() == [1, 1]
    assert campaign.import_labels(first) == (2, 2)
    assert versions() == [1, 1]  # the same labels again are no new version
    edited = json.loads(first.read_text())
    edited[0]["annotations"][0]["result"] = [{
        "id": "new", "type": "rectanglelabels", "from_name": "boxes", "to_name": "image",
        "original_width": 96, "original_height": 64, "image_rotation": 0,
        "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0,
                  "rectanglelabels": ["car"]},
    }]  # fmt: skip
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert campaign.import_labels(tmp_path / "edited.json") == (2, 2)
    assert versions() == [2, 1] if edited[0]["data"]["frame"] == picked[0] else [1, 2]
    second = export_annotated(tasks, tmp_path / "rest.json", drop=picked[:2])
    assert campaign.import_labels(second) == (2, 0)
    assert campaign.rounds()[-1].status == "labelled"
    labelled = {r.name for r in project.records(state="labelled")}
    assert set(picked) <= labelled and len(labelled) == 10
    humans = project.conn.execute(
        "SELECT count(DISTINCT frame_id) FROM box_sets WHERE source = 'human'"
    ).fetchone()[0]
    assert humans == 4
    assert Campaign.open(project, "human").run().rounds[-1].n_labelled == 10
    with pytest.raises(StoreError, match="none of its frames"):
        Campaign.open(project, "human").import_labels(first)


def test_config_errors_name_the_key(project):
    with pytest.raises(ValueError, match=r"unknown key.*strategi"):
        CampaignConfig.from_dict({"strategi": {"name": "random"}})
    with pytest.raises(ValueError, match="labeler"):
        CampaignConfig(labeler="crowd")
    with pytest.raises(ValueError, match=r"stopping: unknown key.*rounds"):
        CampaignConfig(stopping={"rounds": 3})
    Campaign.create(project, "x", config())
    with pytest.raises(StoreError, match="already exists"):
        Campaign.create(project, "x", config())
    with pytest.raises(StoreError, match="no campaign named 'y'"):
        Campaign.open(project, "y")


@pytest.mark.slow
def test_kill_9_at_several_points_then_resume_loses_and_repeats_nothing(project, tmp_path):
    """A real ``scenesift al`` process is killed with SIGKILL at random moments; every
    resume continues, and the end result equals a campaign that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from scenesift.crashpoints import ENV as CRASH_ENV

    cfg = tmp_path / "campaign.toml"
    cfg.write_text(
        'initial = 6\nbatch = 3\nseed = 5\nstrategy = { name = "random" }\n'
        "stopping = { max_rounds = 7 }\n[learner]\nmin_score = 0.0\n[learner.detector]\n"
        'backbone = "tiny"\ninput_size = [64, 96]\nbatch_size = 8\nwidth = 16\nepochs = 3\n'
        "lr = 0.01\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "scenesift.cli", "al"]

    def launch(*verb: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([*base, *verb, "-p", str(project.root)],
                                env={**env, **(env_extra or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    # the reference, uninterrupted, in a process like the victim's: also times a whole run
    started = time.perf_counter()
    ref_proc = launch("start", "reference", "--config", str(cfg))
    _, err = ref_proc.communicate()
    assert ref_proc.returncode == 0, err.decode()
    whole = time.perf_counter() - started
    rng = np.random.default_rng(7)
    kills = 0
    # The first two runs end themselves inside a transaction (a crash point: certain, whatever
    # this machine's speed); the later ones are killed from outside at random moments.
    armed = ["commit:3", "committed:2"]
    for attempt in range(8):
        verb = ["start", "victim", "--config", str(cfg)] if attempt == 0 else ["resume", "victim"]
        crash = {CRASH_ENV: armed[attempt]} if attempt < len(armed) else {}
        proc = launch(*verb, env_extra=crash)
        if not crash:
            # kill somewhere between "torch imported" and "the whole campaign done"
            time.sleep(float(rng.uniform(0.3, 0.9)) * whole)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        assert project.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if proc.returncode == 0:
            break
    assert kills >= 2
    Campaign.open(project, "victim").run()
    assert picks(project, "victim") == picks(project, "reference")
    ref = [r.metrics.get("map50") for r in Campaign.open(project, "reference").rounds()]
    got = [r.metrics.get("map50") for r in Campaign.open(project, "victim").rounds()]
    assert got == ref


def _toml(path):
    import tomllib

    return tomllib.loads(path.read_text())


def test_disagreement_of_an_ensemble_drives_selection(project):
    with pytest.raises(ValueError, match="ensemble"):
        Campaign.create(project, "lonely", config(strategy={"name": "box_disagreement"}))
    cfg = config(strategy={"name": "box_disagreement"}, learner={**LEARNER, "ensemble": 3},
                 stopping={"max_rounds": 2})  # fmt: skip
    rounds = Campaign.create(project, "ens", cfg).run().rounds
    assert rounds[1].strategy.startswith("box_disagreement") and rounds[1].n_picks == 4


def test_learners_say_which_pool_fields_they_fill():
    tagger, detector = make_learner(TAGGER_LEARNER), make_learner(LEARNER)
    assert isinstance(tagger, Learner) and isinstance(detector, Learner)
    assert set(detector.provides()) == {"detections", "embeddings"}
    assert set(tagger.provides()) == {"situation_scores", "embeddings"}
    # an ensemble's members are the samples disagreement strategies read
    ensemble = make_learner({**LEARNER, "ensemble": 2}).provides()
    assert set(ensemble) == {"detections", "detections.member", "embeddings"}
    ensemble = make_learner({**TAGGER_LEARNER, "ensemble": 2}).provides()
    assert set(ensemble) == {"situation_scores", "situation_mc_scores", "embeddings"}
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        make_learner({**LEARNER, "ensemble": 0})
    # the flipped pass localisation stability reads is there only when asked for
    flip = make_learner({**LEARNER, "tta": "flip"}).provides()
    assert set(flip) == {"detections", "embeddings", "flip_detections"}
    with pytest.raises(ValueError, match=r"learner\.tta must be one of none, flip"):
        make_learner({**LEARNER, "tta": "scale"})


def test_a_detector_with_flip_tta_fills_the_flipped_detections(project):
    learner = DetectorLearner(**{**LEARNER, "tta": "flip", "min_score": 0.0})
    frames = project.records(split="train")
    members = learner.fit(project, frames[:12], [])
    out = learner.pool_outputs(members, project, frames[12:])
    assert filled_fields(out) == set(learner.provides()) - {"embeddings"}
    flip, plain = out.flip_detections, out.detections
    assert len(flip.frame) > 0 and flip.class_probs.shape[1] == plain.class_probs.shape[1]
    # mirrored back into the original image: inside it, and not the plain pass's boxes
    widths = np.array([r.width or 0 for r in frames[12:]], np.float32)[flip.frame]
    assert (flip.boxes[:, 0] >= 0).all() and (flip.boxes[:, 2] <= widths + 1e-3).all()
    assert (flip.boxes[:, 2] > flip.boxes[:, 0]).all()
    assert not (len(flip.frame) == len(plain.frame) and np.allclose(flip.boxes, plain.boxes))


def test_a_detector_ensemble_fills_what_it_provides(project):
    learner = DetectorLearner(**{**LEARNER, "ensemble": 2})
    frames = project.records(split="train")
    members = learner.fit(project, frames[:12], [])
    out = learner.pool_outputs(members, project, frames[12:])
    assert len(members) == 2 and members[0].fingerprint != members[1].fingerprint
    assert filled_fields(out) == set(learner.provides()) - {"embeddings"}
    assert set(np.unique(out.detections.member)) <= {0, 1}
    # member 0 is the round's model: its boxes are the ones shown to labellers
    n_shown = sum(1 for boxes in out.shown.values() for _ in boxes)
    assert n_shown == int((out.detections.member == 0).sum())


def test_a_detector_with_situations_tags_the_pool_from_the_rounds_own_labels(project):
    learner = DetectorLearner(**{**LEARNER, "situations": True})
    assert set(learner.provides()) == {"detections", "embeddings", "situation_scores"}
    frames = project.records(split="train")
    members = learner.fit(project, frames[:12], [])
    *detectors, tagger = members
    assert len(detectors) == 1 and tagger.situations == list(project.taxonomy.names)
    out = learner.pool_outputs(members, project, frames[12:])
    assert filled_fields(out) == set(learner.provides()) - {"embeddings"}
    scores, names = out.situation_scores, list(project.taxonomy.names)
    assert scores.shape == (len(frames) - 12, len(names))
    # only night is labelled (with both values) in these frames: every other column is
    # one the tagger cannot say, NaN, never the untrained head's noise
    night = names.index("night")
    assert tagger.trained == ["night"]
    assert np.isfinite(scores[:, night]).all() and ((scores > 0) & (scores < 1))[:, night].all()
    assert np.isnan(np.delete(scores, night, axis=1)).all()


def test_situation_balancing_runs_in_a_detector_campaign_without_a_stored_tagger(project):
    spec = {"name": "balance_situations"}
    # without the round's tagger and with none stored, the first round names both remedies
    stored_only = config(strategy=spec, stopping={"max_rounds": 2})
    with pytest.raises(ValueError, match=r"tagger predict.*learner\.situations = true"):
        Campaign.create(project, "no-scores", stored_only).run()
    cfg = config(strategy=spec, learner={**LEARNER, "situations": True}, situations_from=None,
                 stopping={"max_rounds": 2})  # fmt: skip
    rounds = Campaign.create(project, "slices", cfg).run().rounds
    assert rounds[1].strategy.startswith("balance_situations") and rounds[1].n_picks == 4


@pytest.mark.parametrize(
    ("spec", "learner", "situations_from", "message"),
    [
        ({"name": "bald"}, TAGGER_LEARNER, "latest",
         "strategy 'bald' needs Pool.situation_mc_scores, which comes from learner.kind = "
         "'tagger' with learner.ensemble >= 2; this campaign's learner is 'tagger' with "
         "ensemble = 1"),
        ({"name": "bald"}, {**LEARNER, "ensemble": 2}, "latest",
         "strategy 'bald' needs Pool.situation_mc_scores, which comes from learner.kind = "
         "'tagger' with learner.ensemble >= 2; this campaign's learner is 'detector'"),
        ({"name": "box_disagreement"}, LEARNER, "latest",
         "strategy 'box_disagreement' needs Pool.detections.member, which comes from "
         "learner.kind = 'detector' with learner.ensemble >= 2"),
        ({"name": "box_disagreement"}, {**TAGGER_LEARNER, "ensemble": 3}, "latest",
         "strategy 'box_disagreement' needs Pool.detections, which comes from learner.kind = "
         "'detector'; strategy 'box_disagreement' needs Pool.detections.member"),
        ({"name": "localization_stability"}, LEARNER, "latest",
         "strategy 'localization_stability' needs Pool.flip_detections, which comes from "
         "learner.kind = 'detector' with learner.tta = \"flip\"; this campaign's learner is "
         "'detector'"),
        ({"name": "balance_situations"}, LEARNER, None,
         "strategy 'balance_situations' needs Pool.situation_scores, which comes from "
         "learner.kind = 'tagger' or learner.kind = 'detector' with learner.situations = "
         "true or stored tagger predictions (situations_from)"),
        # the part of a fused or uncertainty-weighted strategy that needs the field is named
        ({"name": "fusion", "parts": [{"name": "random"}, {"name": "bald"}]}, LEARNER, "latest",
         "strategy 'bald' needs Pool.situation_mc_scores"),
        ({"name": "badge", "uncertainty": {"name": "margin"}}, TAGGER_LEARNER, "latest",
         "strategy 'margin' needs Pool.detections, which comes from learner.kind = 'detector'"),
    ],
)  # fmt: skip
def test_a_strategy_reading_what_the_campaign_never_fills_is_refused_at_creation(
    project, spec, learner, situations_from, message
):
    cfg = config(strategy=spec, learner=learner, situations_from=situations_from)
    with pytest.raises(ValueError, match=re.escape(message)):
        Campaign.create(project, "refused", cfg)
    assert catalog.names(project) == []


def test_a_wrapped_diversity_strategy_gets_embeddings(project):
    spec = {"name": "coreset", "dedup": {"per_drive": 1, "window": 10.0, "fill": True}}
    rounds = Campaign.create(project, "cover", config(strategy=spec)).run().rounds
    assert rounds[1].strategy.startswith("coreset") and rounds[1].n_picks == 4


def test_al_start_stores_the_device_and_input_size_in_the_campaign_config(project, monkeypatch):
    from typer.testing import CliRunner

    import scenesift.cli.al as cli_al
    from scenesift.cli import app

    monkeypatch.setattr(cli_al, "_run_campaign", lambda campaign: None)  # no training here
    args = ["al", "start", "c", "-p", str(project.root), "--device", "cpu",
            "--input-size", "64x96", "--epochs", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    learner = Campaign.open(project, "c").config.learner
    assert learner["device"] == "cpu" and list(learner["detector"]["input_size"]) == [64, 96]
    assert learner["detector"]["epochs"] == 1
    assert make_learner(learner).config.device == "cpu"
    assert make_learner(learner).config.input_size == (64, 96)


def test_learner_device_reaches_the_detector_and_tagger_configs():
    assert make_learner({**LEARNER, "device": "cpu"}).config.device == "cpu"
    assert make_learner({**TAGGER_LEARNER, "device": "cpu"}).config.device == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        make_learner({**LEARNER, "device": "tpu"})


class _Teacher:
    """An ObjectDetector stand-in: records what each fit trained on and predicts one
    confident and one doubtful car per frame."""

    fits: ClassVar[list[list[tuple[str, list]]]] = []

    def __init__(self, classes, config) -> None:
        self.config = config

    def fit(self, frames, val, store=None, progress=False):
        _Teacher.fits.append([(r.name, [(b.category, b.score) for b in r.boxes]) for r in frames])
        return self

    def predict(self, records, store=None, progress=False):
        from scenesift.records import Box

        return {r.name: [Box("car", 1, 1, 9, 9, score=0.8), Box("car", 2, 2, 5, 5, score=0.3)]
                for r in records}  # fmt: skip


def test_self_training_adds_the_teachers_confident_boxes_on_the_unlabelled_frames(
    project, monkeypatch
):
    """``pseudo_labels = 0.5``: a teacher trains on the labelled frames; the round's models
    train on those plus the unlabelled ones, each boxed by the teacher's detections scoring
    at least 0.5 (as truth: no score), never by the truth a simulated pool carries."""
    import scenesift.models.detector as detector_module

    monkeypatch.setattr(detector_module, "ObjectDetector", _Teacher)
    frames = project.records(split="train")
    train, unlabelled = frames[:6], frames[6:10]
    _Teacher.fits = []
    learner = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "ensemble": 2})
    members = learner.fit(project, train, [], unlabelled)
    teacher, *students = _Teacher.fits
    assert len(members) == 2 and len(students) == 2
    assert [name for name, _ in teacher] == [r.name for r in train]
    truth = {r.name: [(b.category, None) for b in r.boxes] for r in train}
    for student in students:
        assert student[:6] == list(truth.items())
        assert student[6:] == [(r.name, [("car", None)]) for r in unlabelled]
    # off (the default), or nothing unlabelled: one training per member, on the labels only
    _Teacher.fits = []
    DetectorLearner(**LEARNER).fit(project, train, [], unlabelled)
    DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5}).fit(project, train, [], [])
    assert [[name for name, _ in fit] for fit in _Teacher.fits] == [[r.name for r in train]] * 2
    # a cap on the unlabelled frames read: a seeded sample of them
    _Teacher.fits = []
    capped = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_frames": 3})
    capped.fit(project, train, [], unlabelled)
    capped.fit(project, train, [], unlabelled)
    first, again = (fit[6:] for fit in _Teacher.fits[1::2])
    assert len(first) == 3 and first == again
    assert {name for name, _ in first} < {r.name for r in unlabelled}
    with pytest.raises(ValueError, match=r"learner\.pseudo_labels .* in \(0, 1\]"):
        DetectorLearner(**{**LEARNER, "pseudo_labels": 1.5})
    with pytest.raises(ValueError, match=r"learner\.pseudo_frames must be >= 1"):
        DetectorLearner(**{**LEARNER, "pseudo_frames": 0})


def test_doubtful_pseudo_labels_become_ignore_regions(project):
    """``pseudo_ignore = 0.2``: the teacher's detections from 0.2 up to ``pseudo_labels``
    are ignore regions (``iscrowd``), neither objects nor background; below 0.2 nothing."""
    frames = project.records(split="train")[:2]
    learner = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_ignore": 0.2})
    for r in learner.pseudo_labelled(_Teacher(None, None), project, frames):
        assert [(b.score, dict(b.attributes)) for b in r.boxes] == [
            (None, {}),
            (None, {"iscrowd": True}),
        ]
    strict = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_ignore": 0.4})
    assert [len(r.boxes) for r in strict.pseudo_labelled(_Teacher(None, None), project, frames)
            ] == [1, 1]  # fmt: skip
    for wrong in (0.5, -0.1):
        with pytest.raises(ValueError, match=r"learner\.pseudo_ignore .* \[0, pseudo_labels"):
            DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_ignore": wrong})
    with pytest.raises(ValueError, match=r"learner\.pseudo_ignore"):
        DetectorLearner(**{**LEARNER, "pseudo_ignore": 0.2})  # self-training off


def test_self_training_reads_the_labelled_frames_as_often_as_its_teacher_did(project, monkeypatch):
    """``pseudo_repeat``: the round's model reads each labelled frame that many times beside
    the pseudo-labelled ones; ``"auto"`` the fewest times that give them the teacher's
    passes. By hand, 800 steps of batch 12 over 600 labelled frames are 16 passes; beside
    1,040 pseudo-labelled frames the schedule is 6 passes of what it reads (max(800, 6 *
    ceil(n / 12)) steps), so 3 copies (18 passes; 2 give 12). With steps 10, batch 2 and 1
    pass: 4 frames get 5 passes alone; beside 16, r copies get r passes (n = 4r + 16
    frames, n / 2 >= 10 steps), so 5."""
    auto = DetectorLearner(pseudo_labels=0.5, pseudo_repeat="auto")
    assert auto.repeats(600, 1040) == 3
    small = {"steps": 10, "batch_size": 2, "min_epochs": 1}
    assert DetectorLearner(detector=small, pseudo_labels=0.5, pseudo_repeat="auto").repeats(
        4, 16
    ) == 5  # fmt: skip
    assert DetectorLearner(pseudo_labels=0.5, pseudo_repeat=2).repeats(600, 1040) == 2
    assert DetectorLearner(pseudo_labels=0.5).repeats(600, 1040) == 1  # off by default
    import scenesift.models.detector as detector_module

    monkeypatch.setattr(detector_module, "ObjectDetector", _Teacher)
    frames = project.records(split="train")
    train, unlabelled = frames[:3], frames[3:7]
    _Teacher.fits = []
    DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_repeat": 2}).fit(
        project, train, [], unlabelled
    )
    teacher, student = ([name for name, _ in fit] for fit in _Teacher.fits)
    assert teacher == [r.name for r in train]
    assert student == [r.name for r in train] * 2 + [r.name for r in unlabelled]
    for wrong in (0, 1.5, "twice"):
        with pytest.raises(ValueError, match=r'learner\.pseudo_repeat must be .* or "auto"'):
            DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_repeat": wrong})
    with pytest.raises(ValueError, match=r"learner\.pseudo_repeat .* needs learner\.pseudo_labels"):
        DetectorLearner(**{**LEARNER, "pseudo_repeat": "auto"})  # self-training off


def test_a_class_with_few_labelled_boxes_learns_nothing_from_the_unlabelled_frames(project):
    """``pseudo_min_boxes``: a class with fewer labelled boxes than that gets no pseudo-label
    and the whole unlabelled frame as its ignore region (not background, which it would be
    wherever the teacher missed one); the other classes self-train as before."""
    frames = project.records(split="train")
    train, unlabelled = frames[:6], frames[6:8]
    cars = sum(b.category == "car" for r in train for b in r.boxes)
    learner = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_min_boxes": cars + 1})
    rare = learner.rare(project, train)
    count = {
        c: sum(b.category == c for r in train for b in r.boxes) for c in project.taxonomy.classes
    }
    assert "car" in rare and rare == [c for c, n in count.items() if n <= cars]
    for r in learner.pseudo_labelled(_Teacher(None, None), project, unlabelled, rare):
        assert sorted((b.category, b.x1, b.y1, b.x2, b.y2) for b in r.boxes) == sorted(
            (c, 0, 0, r.width, r.height) for c in rare
        )
        assert all(b.attributes == {"iscrowd": True} for b in r.boxes)
    common = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5, "pseudo_min_boxes": 1})
    assert "car" not in common.rare(project, train)
    assert DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5}).rare(project, train) == []
    with pytest.raises(ValueError, match=r"learner\.pseudo_min_boxes must be >= 1"):
        DetectorLearner(**{**LEARNER, "pseudo_min_boxes": 0})


class _Sees:
    """A detector stand-in that finds every labelled box (``sharp``) or none."""

    def __init__(self, sharp: bool) -> None:
        self.sharp = sharp

    def predict(self, records, store=None, progress=False):
        from dataclasses import replace

        return {r.name: [replace(b, score=0.9) for b in r.boxes] if self.sharp else []
                for r in records}  # fmt: skip


def test_a_self_trained_round_reports_its_teacher_on_the_same_labels(project, monkeypatch):
    """What self-training added is the round's model against its teacher, both trained on
    the same labelled frames: ``evaluate`` scores the teacher too, the experiment keeps it
    as ``teacher_*`` rows and the campaign's tables show it beside the round's metric."""
    from rich.console import Console

    import scenesift.models.detector as detector_module
    from scenesift.experiments.studies import metric_rows
    from scenesift.store.campaigns import RoundInfo
    from scenesift.tables import round_line, rounds_table

    monkeypatch.setattr(detector_module, "ObjectDetector", _Teacher)
    frames = project.records(split="train")
    learner = DetectorLearner(**{**LEARNER, "pseudo_labels": 0.5})
    (student,) = learner.fit(project, frames[:6], [], frames[6:10])
    assert isinstance(student.teacher, _Teacher) and student.teacher is not student
    (plain,) = DetectorLearner(**LEARNER).fit(project, frames[:6], [], frames[6:10])
    assert getattr(plain, "teacher", None) is None

    model = _Sees(sharp=True)
    model.teacher = _Sees(sharp=False)
    metrics = learner.evaluate(model, project, frames)
    assert metrics["map50"] == pytest.approx(1.0)
    assert metrics["teacher"]["map50"] == pytest.approx(0.0)
    assert metrics["teacher"]["ap50_per_class"]["car"] == pytest.approx(0.0)
    assert "teacher" not in learner.evaluate(_Sees(sharp=True), project, frames)

    rows = metric_rows({"run": "r"}, {"n_labelled": 6, **metrics}, len(frames))
    by = {(r["metric"], r["class"]): r["value"] for r in rows}
    assert by["map50", "all"] == pytest.approx(1.0)
    assert by["teacher_map50", "all"] == pytest.approx(0.0)
    assert by["teacher_ap50", "car"] == pytest.approx(0.0)

    def rendered(renderable) -> str:
        console = Console(width=200, record=True)
        console.print(renderable)
        return console.export_text()

    taught = RoundInfo(1, 1, "selected", None, {"map50": 0.25, "teacher": {"map50": 0.2},
                       "n_labelled": 6, "seconds": 1.0}, 4, "random")  # fmt: skip
    assert "map50 0.250 (its teacher 0.200)" in rendered(round_line(taught, "map50"))
    table = rendered(rounds_table("c", [taught], "map50"))
    assert "its teacher" in table and "0.200" in table
    untaught = dataclasses.replace(taught, metrics={"map50": 0.25})
    assert "teacher" not in rendered(rounds_table("c", [untaught], "map50"))


def test_a_round_gives_its_learner_the_pool_frames_nobody_labelled_or_picked(project, monkeypatch):
    seen: list[tuple[set[str], set[str]]] = []
    fit = DetectorLearner.fit

    def spy(self, store, train, val, unlabelled=()):
        seen.append(({r.name for r in train}, {r.name for r in unlabelled}))
        return fit(self, store, train, val, unlabelled)

    monkeypatch.setattr(DetectorLearner, "fit", spy)
    Campaign.create(project, "self", config(stopping={"max_rounds": 2})).run()
    pool = {r.name for r in project.records(split="train")}
    assert [len(labelled) for labelled, _ in seen] == [6, 10]
    for labelled, unlabelled in seen:
        assert unlabelled == pool - labelled


def test_a_self_training_campaign_runs_on_the_real_detector(project):
    cfg = config(learner={**LEARNER, "pseudo_labels": 0.3}, stopping={"max_rounds": 2})
    rounds = Campaign.create(project, "self-trained", cfg).run().rounds
    assert [r.metrics["n_labelled"] for r in rounds] == [0, 6, 10]
    assert all(r.metrics.get("map50") is not None for r in rounds[1:])
