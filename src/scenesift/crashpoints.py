"""Named moments where a test can kill this process exactly (``kill -9``, from inside).

Killing at random times rarely lands in the few microseconds between a transaction's last
write and its commit, yet that is where a torn store would show. So every
``Store.transaction`` passes two crash points: ``commit`` (all its writes made, not
committed) and ``committed`` (just committed, nothing after it run). With the environment
variable ``SCENESIFT_CRASH_AT=NAME:N`` the process ends itself with SIGKILL (no cleanup,
no ``finally``, as a power cut or the OOM killer would) the N-th time (from 1) it reaches
crash point NAME. Unset, a crash point only counts its visits in ``reached``, so a test
can learn from an uninterrupted run how many there are to choose from
(``tests/test_crash.py``).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SCENESIFT_CRASH_AT"

#: How many times each crash point was reached in this process.
reached: Counter[str] = Counter()


def _armed(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, n = spec.rpartition(":")
    if not name or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV} must look like NAME:N (N >= 1), got {spec!r}")
    return name, int(n)


_target = _armed(os.environ.get(ENV))


def crashpoint(name: str) -> None:
    """Count a visit to crash point ``name``; SIGKILL this process if it is the armed one."""
    reached[name] += 1
    if _target is not None and _target == (name, reached[name]):
        os.kill(os.getpid(), signal.SIGKILL)
