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
