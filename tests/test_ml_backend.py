"""scenesift as a Label Studio ML backend (``/ml/<campaign>``), without Label Studio: what
each route answers. tests/test_labelstudio_server.py drives it from a real server."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from al_fixtures import waiting_human_campaign
from scenesift.al.campaign import Campaign
from scenesift.web.app import create_app

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ml")
    store = waiting_human_campaign(tmp)
    campaign = Campaign.open(store, "people")
    ranks = campaign.pick_ranks(campaign.rounds()[-1])
    batch = json.loads((campaign.folder / "round-000" / "tasks.json").read_text())
    store.close()
    with TestClient(create_app(tmp / "proj"), base_url="http://127.0.0.1") as client:
        yield client, ranks, batch


def test_health_and_setup_name_the_campaigns_round(backend):
    client, _, _ = backend
    assert client.get("/ml/people/health").json()["status"] == "UP"
    assert client.post("/ml/people/setup", json={"project": "1.0"}).json() == {
        "model_version": "people/round-000"
    }
    missing = client.get("/ml/nobody/health")
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]


def test_predict_answers_the_batch_pre_annotations_ranked_for_the_queue(backend):
    client, ranks, batch = backend
    tasks = [{"id": i, "data": t["data"]} for i, t in enumerate(batch)]
    stranger = {"id": 99, "data": {"image": "/x.png", "frame": "not/in/project.png"}}
    body = {"tasks": [*tasks, stranger, {"id": 100, "data": {}}], "project": "1.0"}
    results = client.post("/ml/people/predict", json=body).json()["results"]
    assert len(results) == len(tasks) + 2  # one per task, in order
    for task, exported, got in zip(tasks, batch, results, strict=False):
        assert got["model_version"] == "people/round-000"
        assert got["result"] == exported["predictions"][0]["result"]
        # uncertainty sampling serves the lowest score first: the campaign's first pick
        assert got["score"] == pytest.approx(ranks[task["data"]["frame"]] / len(ranks))
    assert sorted(r["score"] for r in results[: len(tasks)]) == [0, 0.25, 0.5, 0.75]
    assert results[-2:] == [
        {"model_version": "people/round-000", "score": 1.0, "result": []},
        {"model_version": "people/round-000", "score": 1.0, "result": []},
    ]


def test_webhook_events_are_accepted(backend):
    client, _, _ = backend
    got = client.post("/ml/people/webhook", json={"action": "ANNOTATION_CREATED"})
    assert got.status_code == 200 and got.json()["action"] == "ANNOTATION_CREATED"


def test_a_token_protected_backend_takes_basic_auth_and_batches_over_a_megabyte(backend):
    """Label Studio authenticates to an ML backend with HTTP Basic auth only, and asks for
    its queue's predictions in one request: 8,000 small tasks are over 1 MB."""
    client, ranks, batch = backend
    app = create_app(client.app.state.project.root, token="tok3n")
    auth = {"Authorization": "Basic " + base64.b64encode(b"label-studio:tok3n").decode()}
    task = {"id": 0, "data": batch[0]["data"]}
    body = {"tasks": [{**task, "id": i} for i in range(8_000)], "project": "1.0"}
    assert len(json.dumps(body)) > 1_000_000
    with TestClient(app, base_url="http://10.0.0.5:8765") as guarded:
        assert guarded.get("/ml/people/health").status_code == 401
        assert guarded.get("/ml/people/health", headers=auth).json()["status"] == "UP"
        got = guarded.post("/ml/people/predict", json=body, headers=auth)
        assert got.status_code == 200
        results = got.json()["results"]
        assert len(results) == 8_000
        assert {r["score"] for r in results} == {ranks[task["data"]["frame"]] / len(ranks)}
        webhook = {"action": "ANNOTATION_CREATED", "pad": "x" * 1_100_000}
        assert guarded.post("/ml/people/webhook", json=webhook, headers=auth).status_code == 413
