"""The command line: each command works end to end, and bad input is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from scenesift import ui
from scenesift.cli import app
from scenesift.store import Store

runner = CliRunner()
ui.console.width = 160  # a terminal, not the runner's 80 columns


def small_bdd(tmp_path: Path) -> Path:
    frames = []
    for d in range(6):
        for i in range(3):
            name = f"drive{d}/{i:06d}.jpg"
            (tmp_path / "images" / f"drive{d}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (40 * d, 90, 30)).save(tmp_path / "images" / name)
            frames.append(
                {
                    "name": name,
                    "videoName": f"drive{d}",
                    "timestamp": 250 * i,
                    "attributes": {"timeofday": "night" if d % 3 == 0 else "daytime"},
                    "labels": [
                        {"category": "car", "box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}}
                    ],
                }
            )
    (tmp_path / "labels.json").write_text(json.dumps(frames))
    return tmp_path / "labels.json"


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_init_import_info_export(tmp_path):
    project = tmp_path / "proj"
    assert run("init", project).exit_code == 0
    labels = small_bdd(tmp_path / "data")
    result = run("import", "bdd", labels, "--project", project)
    assert result.exit_code == 0, result.output
    assert "18" in result.output  # frames imported
    result = run("info", "-p", project)
    assert result.exit_code == 0
    assert "night" in result.output and "golf_cart" in result.output
    out = tmp_path / "export.json"
    assert run("export", "bdd", out, "-p", project).exit_code == 0
    assert len(json.loads(out.read_text())) == 18


def test_help_explains_every_command():
    result = run("--help")
    for command in ("init", "synth", "import", "export", "info"):
        assert command in result.output
    assert "oracle" in run("import", "--help").output


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "a.jpg", "labels": [{"category": "car", "box2d": {"x1": "?"}}]}]')
    proc = subprocess.run(
        [sys.executable, "-m", "scenesift", "import", "bdd", str(bad), "-p", str(project)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bad.json" in proc.stderr and "$[0].labels[0].box2d.x1" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "scenesift", "info", "-p", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "scenesift init" in proc.stderr


def test_label_studio_round_trip_writes_human_labels(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    run("import", "bdd", small_bdd(tmp_path / "data"), "-p", project, "--as", "oracle")
    out = tmp_path / "ls"
    assert run("export", "labelstudio", out, "-p", project).exit_code == 0
    tasks = json.loads((out / "tasks.json").read_text())
    assert (out / "labeling_config.xml").exists() and len(tasks) == 18
    task = tasks[0]
    task["id"] = 1
    task["annotations"] = [
        {
            "id": 7,
            "was_cancelled": False,
            "result": [
                {"from_name": "situations", "to_name": "image", "type": "choices",
                 "value": {"choices": ["dusk", "snow"]}},
                {"from_name": "boxes", "to_name": "image", "type": "rectanglelabels",
                 "original_width": 64, "original_height": 48,
                 "value": {"x": 10, "y": 25, "width": 50, "height": 50, "rotation": 0,
                           "rectanglelabels": ["pedestrian"]}},
            ],
        }
    ]  # fmt: skip
    export = tmp_path / "export.json"
    export.write_text(json.dumps([task]))
    result = run("import", "labelstudio", export, "-p", project, "--as", "human")
    assert result.exit_code == 0, result.output

    with Store.open(project) as store:
        [rec] = store.records(state="labelled")
        assert rec.name == task["data"]["frame"]
        assert rec.situations["dusk"] and rec.situations["snow"] and not rec.situations["night"]
        [box] = rec.boxes
        assert box.category == "pedestrian"
        assert (box.x1, box.y1, box.x2, box.y2) == (6.4, 12.0, 38.4, 36.0)
        assert len(store.records(state="unlabelled")) == 17


def test_export_with_predictions_writes_pre_annotations_and_coco_results(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    run("import", "bdd", small_bdd(tmp_path / "data"), "-p", project)
    from scenesift.records import Box

    with Store.open(project) as store:
        names = [r.name for r in store.records()]
        scores = [[0.9, 0.3]] * (len(names) - 1) + [[0.2, 0.3]]
        store.write_situation_scores("model:t1", names, ["night", "fog"], scores, {"fog": 0.25})
        store.write_box_predictions(
            "model:t1", {n: [Box("truck", 2, 2, 20, 20, score=0.6)] for n in names}
        )
    out = tmp_path / "ls"
    assert (
        run("export", "labelstudio", out, "-p", project, "--predictions", "latest").exit_code == 0
    )
    tasks = json.loads((out / "tasks.json").read_text())
    results = tasks[0]["predictions"][0]["result"]
    assert {r["type"] for r in results} == {"rectanglelabels", "choices"}
    # fog at 0.3 is positive under its stored threshold of 0.25, not under 0.5
    assert ["night", "fog"] in [r["value"].get("choices") for r in results]
    last = [r["value"].get("choices") for r in tasks[-1]["predictions"][0]["result"]]
    assert ["fog"] in last
    info = run("info", "-p", project).output
    assert "model:t1" in info and "18 scored, 18 with detections" in info
    res = tmp_path / "results.json"
    assert run("export", "coco-results", res, "-p", project).exit_code == 0
    detections = json.loads(res.read_text())
    assert len(detections) == 18 and detections[0]["score"] == 0.6


def test_info_shows_drives_per_split_for_each_situation_and_class(tmp_path):
    from scenesift.store import Store
    from scenesift.store.coverage import drives_per_split

    project = tmp_path / "proj"
    run("init", project)
    run("import", "bdd", small_bdd(tmp_path / "data"), "--project", project)
    with Store.open(project) as store:
        rows = {r.name: r for r in drives_per_split(store)}
    # night is in 2 of the 6 drives: the split keeps one in train and one in test
    assert (rows["night"].train, rows["night"].test) == (1, 1)
    assert rows["car"].total == 6 and rows["fog"].total == 0 and not rows["car"].unsplit
    out = run("info", "-p", project).output
    assert "Drives with positives per split" in out
    table = out[out.index("Drives with positives per split") :].splitlines()
    night = next(line for line in table if line.strip(" │┃").startswith("night"))
    assert night.count("1 (few)") == 2


def test_label_studio_export_locates_images_for_the_server(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    run("import", "bdd", small_bdd(tmp_path / "data"), "-p", project, "--as", "oracle")
    out = tmp_path / "ls"
    result = run("export", "labelstudio", out, "-p", project, "--local-files", tmp_path)
    assert result.exit_code == 0, result.output
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=data/images/drive0/000000.jpg"
    result = run("export", "labelstudio", out, "-p", project, "--image-prefix", "http://h/i")
    assert json.loads((out / "tasks.json").read_text())[0]["data"]["image"] == (
        "http://h/i/drive0/000000.jpg"
    )
    result = run("export", "labelstudio", out, "-p", project, "--local-files", tmp_path / "ls")
    assert result.exit_code == 2 and "not under the local-files root" in result.output
    result = run("export", "bdd", tmp_path / "x.json", "-p", project, "--image-prefix", "http://h")
    assert result.exit_code == 2 and "labelstudio only" in result.output


def test_a_separate_evaluation_world_joins_a_project_as_its_test_split(tmp_path):
    # train on one world, evaluate on another (a different seed, more drives): the second
    # world's drive names carry a prefix so they cannot collide, and all of it is test
    project = tmp_path / "proj"
    assert run("init", project, "--split", "0.8,0.2,0").exit_code == 0
    for out, seed, prefix in ((tmp_path / "pool", 0, ""), (tmp_path / "eval", 1, "eval_")):
        args = ["synth", out, "--frames", 50, "--seed", seed, "--no-sheet"]
        assert run(*args, "--drive-prefix", prefix).exit_code == 0
    assert run("import", "bdd", tmp_path / "pool" / "labels.json", "-p", project).exit_code == 0
    result = run("import", "bdd", tmp_path / "eval" / "labels.json", "-p", project,
                 "--split", "test")  # fmt: skip
    assert result.exit_code == 0, result.output
    with Store.open(project) as store:
        test = store.records(split="test")
        rest = store.records(split="train") + store.records(split="val")
    assert len(test) == 50 and all(r.drive.startswith("eval_drive_") for r in test)
    assert len(rest) == 50 and not any(r.drive.startswith("eval_") for r in rest)
    # the same drives cannot move to another split, and a split must be a split
    again = runner.invoke(app, ["import", "bdd", str(tmp_path / "eval" / "labels.json"),
                                "-p", str(project), "--split", "val"])  # fmt: skip
    assert again.exit_code == 2 and "'eval_drive_0000' is in the test split" in again.output
    bad = run("import", "bdd", tmp_path / "eval" / "labels.json", "-p", project, "--split", "x")
    assert bad.exit_code == 2 and "--split must be one of train, val, test" in bad.output


def test_synth_refuses_a_drive_prefix_that_is_not_a_name(tmp_path):
    result = run("synth", tmp_path / "w", "--frames", 5, "--no-sheet", "--drive-prefix", "../x")
    assert result.exit_code == 2 and "drive_prefix" in result.output


def test_experiment_run_flags_thin_evaluation_and_ends_with_the_verdict(tmp_path, monkeypatch):
    from report_fixtures import synthetic_results
    from scenesift.experiments import runners
    from scenesift.experiments.results import append_run
    from scenesift.experiments.stats import EVAL_OBJECTS
    from scenesift.report.summary import verdict

    project = tmp_path / "proj"
    assert run("init", project).exit_code == 0
    out = tmp_path / "results"
    df = synthetic_results(seeds=3, rounds=4, variance_runs=2)
    count = {"experiment": "synthetic", "study": "strategies", "run": "c", "strategy": "random",
             "seed": 0, "round": 0, "n_labelled": 0, "metric": EVAL_OBJECTS,
             "class": "golf_cart", "value": 7}  # fmt: skip
    append_run(out, "all", [*df.to_dict("records"), count])
    monkeypatch.setattr(runners, "run_experiment", lambda *a, **k: out)
    config = tmp_path / "e.toml"
    config.write_text('name = "synthetic"\nstudies = ["strategies"]\n')
    result = run("experiment", "run", config, "-p", project)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Evaluation power" in text and "7 test objects" in text and "too few" in text
    assert "3 seeds per strategy" in text  # under 8: flagged too
    said = verdict(df)
    assert said and text.endswith(" ".join(f"Verdict: {said}".split()))  # the last words


# ----------------------------------------------------------------- user text is not markup


def scenesift(*args: object) -> subprocess.CompletedProcess:
    """The installed entry point (``main``) in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "scenesift", *map(str, args)], capture_output=True, text=True
    )


def _bdd_frame(name: str, category: str = "car") -> dict:
    return {
        "name": name,
        "videoName": "d0",
        "timestamp": 0,
        "attributes": {"timeofday": "daytime"},
        "labels": [{"category": category, "box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}}],
    }


def test_file_names_and_categories_with_brackets_are_printed_as_text(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    data = tmp_path / "data"
    (data / "images" / "good").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(data / "images" / "good" / "a.jpg")
    (data / "images" / "good" / "[").mkdir()
    (data / "images" / "good" / "[" / "x].jpg").write_bytes(b"not a jpeg")
    labels = data / "labels.json"
    frames = [_bdd_frame("good/a.jpg", category="[/y]"), _bdd_frame("good/[/x].jpg")]
    labels.write_text(json.dumps(frames))
    result = run("import", "bdd", labels, "-p", project)
    assert result.exit_code == 0, result.output
    assert "unknown category '[/y]'" in result.output
    assert "good/[/x].jpg: not an image" in result.output


def test_an_error_naming_a_bracketed_frame_is_one_line_and_exit_code_2(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([_bdd_frame("../[/x].jpg")]))
    proc = scenesift("import", "bdd", labels, "-p", project)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert "$[0].name" in line and "got '../[/x].jpg'" in line


def test_an_error_quoting_a_list_keeps_its_text(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    Image.new("RGB", (64, 48)).save(tmp_path / "a.jpg")
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}],
        "categories": [{"id": 1, "name": "car"}],
    }))  # fmt: skip
    proc = scenesift("import", "coco", coco, "-p", project, "--images", tmp_path)
    assert proc.returncode == 2
    assert "expected a bbox [x, y, width, height], got [1, 2, 3]" in proc.stderr


# ----------------------------------------------------------------- the command line's surface


def test_version_is_printed():
    from scenesift import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"scenesift {__version__}"


def test_serve_takes_the_project_like_every_other_command(tmp_path, monkeypatch):
    import scenesift.web.server

    served = {}
    monkeypatch.setattr(scenesift.web.server, "serve", lambda project, **kw: served.update(
        project=project, **kw))  # fmt: skip
    assert run("serve", "-p", tmp_path, "--port", "9").exit_code == 0
    assert served["project"] == tmp_path and served["port"] == 9


def _commands(group, path=()):
    """(path, click command) of every command under ``group``."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_documentation_file_named_in_help_exists():
    import re

    import typer

    root = Path(__file__).resolve().parents[1]
    named = set()
    for _, cmd in _commands(typer.main.get_command(app)):
        for text in [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]:
            named |= set(re.findall(r"docs/[\w./-]+\.md", text))
    assert "docs/experiments.md" in named  # the experiment TOML is documented there
    assert all((root / doc).is_file() for doc in named), named


def test_al_start_options_have_help_and_show_their_defaults():
    import typer

    cmd = typer.main.get_command(app)
    start = cmd.commands["al"].commands["start"]
    ctx = start.context_class(start)
    for param in start.params:
        if param.name in ("initial", "batch", "rounds", "epochs", "seed"):
            _, text = param.get_help_record(ctx)
            assert param.help and "default:" in text, param.name


def test_a_misspelled_strategy_or_labeler_gets_a_suggestion_before_any_work(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    result = run("al", "start", "c", "-p", project, "--strategy", "least_confidance")
    assert result.exit_code == 2 and "did you mean 'least_confidence'?" in result.output
    result = run("al", "start", "c", "-p", project, "--labeler", "labelstudi")
    assert result.exit_code == 2 and "did you mean 'labelstudio'?" in result.output


def test_a_campaign_config_that_is_not_toml_is_named(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    bad = tmp_path / "campaign.toml"
    bad.write_text("initial = = 3\n")
    result = run("al", "start", "c", "-p", project, "--config", bad)
    assert result.exit_code == 2 and "campaign.toml" in result.output


def test_the_documented_experiment_toml_loads(tmp_path):
    import re

    from scenesift.al.strategies import make_strategy
    from scenesift.experiments.config import ExperimentConfig

    doc = (Path(__file__).resolve().parents[1] / "docs" / "experiments.md").read_text()
    [example] = re.findall(r"```toml\n(.*?)```", doc, re.S)
    (tmp_path / "e.toml").write_text(example)
    cfg = ExperimentConfig.load(tmp_path / "e.toml")
    for spec in (*cfg.strategies.strategies, *cfg.tagger.strategies):
        make_strategy(spec)


def test_help_loads_no_heavy_package():
    """`scenesift --help` must stay fast: commands import torch, pandas and PIL when run."""
    code = (
        "import sys, scenesift.cli; "
        "print(sorted({'torch', 'pandas', 'PIL', 'sklearn', 'matplotlib'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_commands_only_parse_call_and_print():
    """Business logic lives in the packages that own it: every command is short."""
    import ast

    modules = sorted((Path(__file__).resolve().parents[1] / "src/scenesift/cli").glob("*.py"))
    assert len(modules) > 1  # a package, one module per command group
    for module in modules:
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= 40, f"{module.name}:{node.name} has {lines} lines"


def test_a_coco_export_counts_the_frames_it_wrote_and_names_those_it_left_out(tmp_path):
    project = tmp_path / "proj"
    run("init", project)
    run("import", "bdd", small_bdd(tmp_path / "data"), "-p", project)  # 18 with boxes
    pool = tmp_path / "pool"
    for i in range(4):  # 4 unlabelled images: no boxes
        (pool / f"cam-{i}").mkdir(parents=True)
        Image.new("RGB", (64, 48), (9, 9, 9)).save(pool / f"cam-{i}" / "000001.jpg")
    assert run("import", "folder", pool, "-p", project).exit_code == 0
    out = run("export", "coco", tmp_path / "all.json", "-p", project).output
    written = json.loads((tmp_path / "all.json").read_text())
    assert len(written["images"]) == 18
    assert "Wrote 18 frames" in out and "left out 4 frames" in out and "--state unlabelled" in out
    out = run("export", "coco", tmp_path / "pool.json", "-p", project, "--state", "unlabelled")
    assert "Wrote 4 frames" in out.output and "left out" not in out.output


def test_help_reflows_wrapped_docstrings_into_sentences():
    out = runner.invoke(app, ["--help"], terminal_width=200).output
    # the docstring breaks after "writes"; typer's rich help used to keep that break
    assert "writes the frame list" in out
    from scenesift.cli.app import reflow

    assert reflow("One\nsentence.\n\nNext\n- item\n- item\n  indented") == (
        "One sentence.\n\nNext\n- item\n- item\n  indented"
    )
