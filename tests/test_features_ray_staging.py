"""Staging folders of killed Ray runs are swept at the next run's start, without Ray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from scenesift.features.ray import OWNER_FILE, STAGING_DIR, STALE_UNOWNED_S, sweep_stale_staging


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def staging(project, name, host=None, pid=None, age_s=0.0):
    folder = project / STAGING_DIR / name
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "0.parquet").write_bytes(b"rows")
    if pid is not None:
        owner = {"host": host or socket.gethostname(), "pid": pid, "started": 0}
        (folder / OWNER_FILE).write_text(json.dumps(owner))
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def test_a_killed_runs_staging_is_removed_and_live_or_foreign_ones_are_kept(tmp_path):
    killed = staging(tmp_path, "ray-aaa-1", pid=dead_pid())
    live = staging(tmp_path, "ray-bbb-2", pid=os.getpid())
    foreign = staging(tmp_path, "ray-ccc-3", host="another-node", pid=dead_pid())
    old_unowned = staging(tmp_path, "ray-ddd-4", age_s=STALE_UNOWNED_S + 60)
    new_unowned = staging(tmp_path, "ray-eee-5", age_s=60)
    other = staging(tmp_path, "not-ray", pid=dead_pid())
    assert sweep_stale_staging(tmp_path) == [killed, old_unowned]
    assert not killed.exists() and not old_unowned.exists()
    assert all(p.exists() for p in (live, foreign, new_unowned, other))


def test_a_project_without_staging_is_fine(tmp_path):
    assert sweep_stale_staging(tmp_path) == []
