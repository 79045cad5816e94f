"""A real Label Studio (1.23.2, from .labelstudio-venv) in the loop of a labelling campaign.

The session fixture installs it (scripts/install-labelstudio.sh; the test is skipped only when
that install fails), starts one server on a free 127.0.0.1 port and stops it with SIGTERM. The
first session migrates a data dir and keeps it in the venv folder; later sessions copy it, so
the server answers /health in seconds instead of ~30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from typer.testing import CliRunner

from al_fixtures import waiting_human_campaign
from scenesift import ui
from scenesift.al.campaign import Campaign
from scenesift.cli import app
from scenesift.store import Store
from scenesift.web.app import create_app

pytestmark = [pytest.mark.labelstudio, pytest.mark.usefixtures("one_thread")]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("LABELSTUDIO_VENV", REPO / ".labelstudio-venv"))
INSTALL = REPO / "scripts" / "install-labelstudio.sh"
USER, PASSWORD = "labeller@scenesift.test", "scenesift-test-password"
TOKEN = "5ce6e5f7" * 5  # Label Studio's legacy API tokens are 40 characters
START_TIMEOUT = 180.0  # a fresh data dir runs its migrations first (~30 s on an idle machine)

ui.console.width = 160


@dataclass
class LabelStudio:
    """A running server: its URL, an authenticated session and the local-files root."""

    url: str
    session: requests.Session
    files_root: Path
    log: Path

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = self.session.request(method, self.url + path, timeout=60, **kw)
        assert r.ok, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, home: Path, files_root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start the server and wait for /health on the chosen port (it silently moves to the
    next port when that one is taken, so a different answer there is not ours)."""
    port = _free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        # the ML backend under test is scenesift on 127.0.0.1 (refused as reserved otherwise)
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    env.pop("PYTHONPATH", None)  # its own interpreter and packages only
    cmd = [str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--data-dir",
           str(data_dir), "--internal-host", "127.0.0.1", "--port", str(port),
           "--enable-legacy-api-token"]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Label Studio exited ({proc.returncode}) while starting:\n{_tail(log)}")
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    _stop(proc)
    pytest.fail(f"Label Studio did not answer {url}/health in {START_TIMEOUT:.0f} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, n: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    install = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"Label Studio could not be installed ({INSTALL.name}):\n{install.stderr}")
    base = tmp_path_factory.mktemp("labelstudio")
    # every test's tmp_path lies below the base temp folder: all of it may be served
    files_root = tmp_path_factory.getbasetemp()
    home, data_dir, log = base / "home", base / "data", base / "server.log"
    home.mkdir()
    template = VENV / "data-template"  # migrated, with the user and token; rebuilt with the venv
    started = time.monotonic()
    if template.is_dir():
        shutil.copytree(template, data_dir)
        proc, url = _start(data_dir, home, files_root, log)
    else:
        proc, url = _start(data_dir, home, files_root, log)
        _stop(proc)  # an idle, consistent copy of the migrated database
        partial = VENV / f"data-template.{os.getpid()}"
        shutil.copytree(data_dir, partial)
        partial.rename(template)
        proc, url = _start(data_dir, home, files_root, log)
    print(f"\nLabel Studio ready at {url} in {time.monotonic() - started:.1f} s")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {TOKEN}"
    try:
        yield LabelStudio(url, session, files_root, log)
    finally:
        _stop(proc)


@contextmanager
def scenesift_serving(project: Path) -> Iterator[str]:
    """``scenesift serve`` for ``project`` in a thread, on a free 127.0.0.1 port: its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(project), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def cli(*args: Any) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def snapshot_export(ls: LabelStudio, project_id: int) -> list[dict]:
    """The full JSON export (annotations and whole predictions) through an export snapshot."""
    options = {"serialization_options": {"predictions": {"only_id": False}}}
    snap = ls.api("POST", f"/api/projects/{project_id}/exports", json=options)
    deadline = time.monotonic() + 60
    while snap["status"] != "completed":
        assert snap["status"] != "failed" and time.monotonic() < deadline, snap
        time.sleep(0.3)
        snap = ls.api("GET", f"/api/projects/{project_id}/exports/{snap['id']}")
    path = f"/api/projects/{project_id}/exports/{snap['id']}/download?exportType=JSON"
    return ls.api("GET", path)


def labelling_project(ls: LabelStudio, tmp_path: Path, *export_options: str) -> dict[str, dict]:
    """The waiting batch exported (local-files URLs) into a new Label Studio project with a
    local-files storage on the images: its tasks by frame name, with the project id."""
    out = tmp_path / "batch"
    cli("export", "labelstudio", out, "-p", tmp_path / "proj", "--state", "selected",
        "--local-files", ls.files_root, *export_options)  # fmt: skip
    tasks = json.loads((out / "tasks.json").read_text())
    config = (out / "labeling_config.xml").read_text()
    pid = ls.api("POST", "/api/projects", json={"title": "round 0", "label_config": config})["id"]
    ls.api("POST", "/api/storages/localfiles",
           json={"project": pid, "path": str(tmp_path / "data"), "title": "frames"})  # fmt: skip
    imported = ls.api("POST", f"/api/projects/{pid}/import", json=tasks)
    assert imported["task_count"] == len(tasks) == 4
    assert imported["prediction_count"] == sum(len(t["predictions"]) for t in tasks)
    listed = ls.api("GET", f"/api/tasks?project={pid}&fields=all&page_size=100")["tasks"]
    return {t["data"]["frame"]: t for t in listed}


def test_a_campaign_batch_goes_through_label_studio_and_back(label_studio, tmp_path):
    ls = label_studio
    started = time.monotonic()
    store = waiting_human_campaign(tmp_path)
    project = tmp_path / "proj"
    by_frame = labelling_project(ls, tmp_path, "--predictions", "latest")
    picked = set(by_frame)
    pid = next(iter(by_frame.values()))["project"]
    # the task opens as it is: Label Studio serves its image from the local-files storage
    some = next(iter(by_frame.values()))
    image = ls.session.get(ls.url + some["data"]["image"], timeout=30)
    assert image.ok and image.content.startswith(b"\x89PNG"), image.status_code

    assert all(t["total_predictions"] == 1 for t in by_frame.values())

    # an annotator corrects the first frame and accepts the pre-annotations of the others
    first = sorted(picked)[0]
    for name, task in sorted(by_frame.items()):
        predictions = ls.api("GET", f"/api/predictions?task={task['id']}")
        assert len(predictions) == 1 and predictions[0]["result"]
        result = predictions[0]["result"]
        if name == first:
            result = [
                {"id": "fix", "type": "rectanglelabels", "from_name": "boxes",
                 "to_name": "image", "original_width": 96, "original_height": 64,
                 "value": {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0,
                           "rotation": 0, "rectanglelabels": ["truck"]}},
                {"id": "sit", "type": "choices", "from_name": "situations",
                 "to_name": "image", "value": {"choices": ["night", "rain"]}},
            ]  # fmt: skip
        ls.api("POST", f"/api/tasks/{task['id']}/annotations",
               json={"result": result, "was_cancelled": False})  # fmt: skip

    exported = snapshot_export(ls, pid)
    assert {t["data"]["frame"] for t in exported if t["annotations"]} == picked
    export = tmp_path / "export.json"
    export.write_text(json.dumps(exported))
    store.close()

    output = cli("al", "import-labels", "people", export, "-p", project)
    assert "Labelled 4 frame(s); 0 of this round still to label" in output

    with Store.open(project) as store:
        labelled = {r.name: r for r in store.records(state="labelled", source="human")}
        assert picked <= set(labelled)
        fixed = labelled[first]
        assert [(b.category, b.x1, b.y1, b.x2, b.y2) for b in fixed.boxes] == [
            ("truck", pytest.approx(24.0), pytest.approx(16.0), pytest.approx(72.0),
             pytest.approx(48.0))
        ]  # fmt: skip
        assert fixed.situations["night"] and fixed.situations["rain"]
        assert not fixed.situations["day"]
        rounds = Campaign.open(store, "people").rounds()
        # the campaign went on: round 1 trained on the seed set plus the people's batch
        assert rounds[0].status == "labelled" and rounds[1].n_labelled == 10
    print(f"round trip through Label Studio: {time.monotonic() - started:.1f} s")


def test_label_studio_asks_scenesift_for_pre_annotations_and_the_queue_order(
    label_studio, tmp_path
):
    ls = label_studio
    started = time.monotonic()
    store = waiting_human_campaign(tmp_path)
    campaign = Campaign.open(store, "people")
    ranks = campaign.pick_ranks(campaign.rounds()[-1])
    batch = json.loads((campaign.folder / "round-000" / "tasks.json").read_text())
    expected = {t["data"]["frame"]: t["predictions"][0]["result"] for t in batch}
    store.close()
    by_frame = labelling_project(ls, tmp_path)  # tasks without pre-annotations
    pid = next(iter(by_frame.values()))["project"]
    assert all(t["total_predictions"] == 0 for t in by_frame.values())

    with scenesift_serving(tmp_path / "proj") as url:
        backend = {"project": pid, "url": f"{url}/ml/people", "title": "scenesift"}
        assert ls.api("POST", "/api/ml", json=backend)["state"] == "CO"  # health, setup
        everything = {"selectedItems": {"all": True, "excluded": []}}
        ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
               json=everything)  # fmt: skip
        for name, task in by_frame.items():
            [prediction] = ls.api("GET", f"/api/predictions?task={task['id']}")
            assert prediction["model_version"] == "people/round-000"
            assert prediction["result"] == expected[name]
            assert prediction["score"] == pytest.approx(ranks[name] / len(ranks))

        # uncertainty sampling on scenesift's version: the queue is the campaign's ranking
        settings = {"sampling": "Uncertainty sampling", "model_version": "people/round-000"}
        ls.api("PATCH", f"/api/projects/{pid}", json=settings)
        queue = []
        for _ in range(len(ranks)):
            task = ls.api("GET", f"/api/projects/{pid}/next")
            queue.append(task["data"]["frame"])
            ls.api("POST", f"/api/tasks/{task['id']}/annotations",
                   json={"result": expected[queue[-1]], "was_cancelled": False})  # fmt: skip
        assert queue == sorted(ranks, key=ranks.get)
    print(f"Label Studio with scenesift as its ML backend: {time.monotonic() - started:.1f} s")
