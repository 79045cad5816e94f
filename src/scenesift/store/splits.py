"""Assign train/val/test splits by drive, stratified over situations and classes.

Neighbouring frames of a drive are near-duplicates, so a split is a property of a drive: a
frame-level split would leak almost-identical images between train and test. Within that
constraint we want every rare situation represented in each split in proportion.

Written by hand because no well-kept library does *grouped multi-label* stratification:
scikit-learn's StratifiedGroupKFold handles one label, iterative-stratification packages
ignore groups. This follows Sechidis et al.'s iterative stratification (2011), applied to
drives: drives holding the rarest labels are placed first, each into the split that lacks
its labels most. Unlike the original (which looks at the rarest label only), every label of
the drive votes, weighted by rarity, because a drive often holds two rare labels (snow in a
tunnel) and the rarer one alone would decide where the other goes.

Proportions alone can still leave a rare situation out of train or test: with fog in two
drives, the second goes wherever fog is most lacking relative to its target, often val, and
then there is no fog to test on (or to learn from). So afterwards every label with at least
two positive drives gets one in train and one in test, rarest label first, by moving a
positive drive from val (else from the split with most of them) without taking any label's
last positive drive out of train or test. :func:`unsplit_labels` names the labels that still
lack one (a label in a single drive cannot be split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def assign_splits(
    drive_labels: Mapping[str, Mapping[str, int]],
    drive_sizes: Mapping[str, int],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> dict[str, str]:
    """Map each drive to a split.

    ``drive_labels[drive][label]`` counts the drive's frames that are positive for a label
    (situations and classes alike); ``drive_sizes[drive]`` is its frame count. Deterministic
    for a given input and seed, independent of dict order.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    share = np.asarray(fractions, dtype=float) / float(sum(fractions))
    drives = sorted(drive_sizes)
    if not drives:
        return {}
    rng = np.random.default_rng(seed)
    tiebreak = dict(zip(drives, rng.permutation(len(drives)), strict=True))

    labels = sorted({lab for d in drives for lab, n in drive_labels.get(d, {}).items() if n > 0})
    total = {lab: sum(drive_labels.get(d, {}).get(lab, 0) for d in drives) for lab in labels}
    wanted = {lab: share * total[lab] for lab in labels}
    wanted_frames = share * sum(drive_sizes[d] for d in drives)
    got = {lab: np.zeros(len(SPLITS)) for lab in labels}
    got_frames = np.zeros(len(SPLITS))

    def rarest(d: str) -> tuple[float, int]:
        present = [total[lab] for lab, n in drive_labels.get(d, {}).items() if n > 0]
        return (min(present) if present else float("inf"), tiebreak[d])

    usable = [s for s in range(len(SPLITS)) if share[s] > 0]
    out: dict[str, str] = {}
    for d in sorted(drives, key=rarest):
        present = [lab for lab, n in drive_labels.get(d, {}).items() if n > 0]
        # How much of its target each split still lacks, as a fraction of that target;
        # each label weighted by 1/total so that rare labels dominate common ones.
        score = np.zeros(len(SPLITS))
        for lab in present:
            score += (wanted[lab] - got[lab]) / np.maximum(wanted[lab], 1e-9) / total[lab]
        frame_need = (wanted_frames - got_frames) / np.maximum(wanted_frames, 1e-9)
        choice = max(usable, key=lambda s: (round(score[s], 12), frame_need[s], -s))
        out[d] = SPLITS[choice]
        got_frames[choice] += drive_sizes[d]
        for lab in present:
            got[lab][choice] += drive_labels[d][lab]
    if share[0] > 0 and share[2] > 0:
        _keep_train_and_test(out, drive_labels, drive_sizes, tiebreak)
    return out


def _keep_train_and_test(
    out: dict[str, str],
    drive_labels: Mapping[str, Mapping[str, int]],
    drive_sizes: Mapping[str, int],
    tiebreak: Mapping[str, int],
) -> None:
    """Move drives so that each label with >= 2 positive drives has one in train and one
    in test, never emptying train or test of another such label's positive drives."""
    positive: dict[str, list[str]] = {}
    for d in sorted(out):
        for lab, n in drive_labels.get(d, {}).items():
            if n > 0:
                positive.setdefault(lab, []).append(d)
    splittable = {lab: ds for lab, ds in positive.items() if len(ds) >= 2}

    def in_split(lab: str, split: str) -> int:
        return sum(1 for d in splittable[lab] if out[d] == split)

    def movable(d: str) -> bool:
        src = out[d]
        if src == "val":
            return True
        return all(
            in_split(lab, src) >= 2
            for lab, n in drive_labels.get(d, {}).items()
            if n > 0 and lab in splittable
        )

    for lab in sorted(splittable, key=lambda lab: (len(splittable[lab]), lab)):
        for target in ("test", "train"):
            if in_split(lab, target):
                continue
            donors = [d for d in splittable[lab] if out[d] != target and movable(d)]
            if donors:
                # from val first, then from the split holding most of the label; small drives
                # first, to disturb the split sizes least
                d = min(donors, key=lambda d: (out[d] != "val", -in_split(lab, out[d]),
                                               drive_sizes[d], tiebreak[d]))  # fmt: skip
                out[d] = target


def unsplit_labels(
    drive_labels: Mapping[str, Mapping[str, int]], assignment: Mapping[str, str]
) -> dict[str, int]:
    """Labels with a positive drive that lack one in train or in test: label -> its positive
    drives (1: cannot be split; more: the guarantee could not be kept)."""
    where: dict[str, set[str]] = {}
    drives: dict[str, int] = {}
    for d, split in assignment.items():
        for lab, n in drive_labels.get(d, {}).items():
            if n > 0:
                where.setdefault(lab, set()).add(split)
                drives[lab] = drives.get(lab, 0) + 1
    return {lab: drives[lab] for lab in sorted(where) if not {"train", "test"} <= where[lab]}
