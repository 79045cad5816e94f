"""How many drives stand behind each situation and class a model is trained on.

Consecutive frames of a drive are nearly the same picture, so 130 fog frames from one drive
teach one fog scene: a model trained on them learns that drive, and nothing measured on it
generalises. Training commands warn, in one line, about the situations and classes whose
training positives come from fewer than :data:`MIN_TRAIN_DRIVES` drives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scenesift.records import FrameRecord

#: Fewer positive training drives than this and a label is named in the training warning.
MIN_TRAIN_DRIVES = 2


def positive_drives(
    frames: Iterable[FrameRecord], situations: Sequence[str] = (), classes: Sequence[str] = ()
) -> dict[str, int]:
    """Label -> drives holding a frame labelled positive (situations) or an object (classes)."""
    seen: dict[str, set[str]] = {name: set() for name in (*situations, *classes)}
    for f in frames:
        for s in situations:
            if f.situations.get(s):
                seen[s].add(f.drive)
        for b in f.boxes or ():
            if b.category in seen and b.category in classes:
                seen[b.category].add(f.drive)
    return {name: len(drives) for name, drives in seen.items()}


def few_drives_warning(
    drives: dict[str, int], what: str, minimum: int = MIN_TRAIN_DRIVES
) -> str | None:
    """One line naming the labels with fewer than ``minimum`` positive training drives, or
    None when every label has enough."""
    few = {name: n for name, n in drives.items() if n < minimum}
    if not few:
        return None
    listed = ", ".join(f"{name} ({n})" for name, n in few.items())
    return (
        f"{len(few)} {what} have training positives from fewer than {minimum} drives "
        f"(drives in brackets): {listed}. Frames of one drive are near-duplicates, so a model "
        "learns little of these and no test can say how well; label more drives of them."
    )
