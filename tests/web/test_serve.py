"""`scenesift serve`: loopback by default, a token off loopback, checked on every request."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import uvicorn
from typer.testing import CliRunner

from conftest import TestClient
from scenesift.cli import app


def test_serve_off_loopback_generates_and_prints_a_token(project, monkeypatch):
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: served.update(app=a, **kw))
    result = CliRunner().invoke(app, ["serve", str(project), "--host", "0.0.0.0", "--port", "9"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "0.0.0.0" and served["port"] == 9
    token = re.search(r"\?token=([\w-]+)", result.output).group(1)
    assert token in result.output.split("token:")[1]
    with TestClient(served["app"], base_url="http://192.0.2.1:9") as client:
        assert client.get("/api/frames").status_code == 401
        ok = client.get("/api/frames", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_serve_on_loopback_needs_no_token_unless_given(project, monkeypatch):
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: served.update(app=a, **kw))
    result = CliRunner().invoke(app, ["serve", str(project)])
    assert result.exit_code == 0 and served["host"] == "127.0.0.1" and served["port"] == 8765
    assert "token" not in result.output
    with TestClient(served["app"], base_url="http://127.0.0.1:8765") as client:
        assert client.get("/api/frames").status_code == 200


def test_serve_refuses_a_folder_that_is_not_a_project(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2 and "not a scenesift project" in result.output


def test_serve_runs_uvicorn_with_the_token(project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "scenesift", "serve", str(project), "--port", str(port),
           "--token", "tok-123"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/frames", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        assert r.status_code == 401
        r = httpx.get(f"http://127.0.0.1:{port}/?token=tok-123", follow_redirects=True)
        assert r.status_code == 200 and "Situation coverage" in r.text
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/?token=tok-123" in out
