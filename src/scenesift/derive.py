"""Object-level situations that follow from a frame's labelled boxes.

``pedestrian_present``, ``crowded``, ``close_participant`` and ``far_participant`` are facts
about the objects, so wherever a frame's objects are labelled (any format that carries
boxes) they can be read off the boxes instead of being labelled again. They are stored under
their own source, ``derived``, the last in the truth precedence (human > import > oracle >
derived): a label that came with the data or from a person always wins over them.

The rules are those of the synthetic world (``synth/render.py``): a *participant* is any
object but a traffic cone; close is within 10 m, far beyond 40 m; crowded is 8 or more
participants each at least half visible. A box's distance is its labelled ``distance`` where
the format has one (KITTI's z, the synthetic world's), else estimated from its height by a
pinhole camera (:class:`DeriveSettings`). Where the boxes cannot settle a situation (a box of
unknown distance, occlusion of unknown extent) it is left missing, never guessed negative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scenesift.records import Box, FrameRecord
from scenesift.taxonomy import Taxonomy

#: Object classes that count as traffic participants (cones do not).
PARTICIPANTS = ("car", "truck", "pedestrian", "cyclist", "golf_cart")
#: The situations :func:`derive_situations` can read off the boxes.
DERIVED_SITUATIONS = ("pedestrian_present", "crowded", "close_participant", "far_participant")
#: The label source of derived situations (see the concepts table).
DERIVED = "derived"


@dataclass(frozen=True)
class DeriveSettings:
    """Thresholds of the object-level situations (those of the synthetic world) and the
    camera model that estimates a distance from a box's height where none is labelled."""

    close_m: float = 10.0
    far_m: float = 40.0
    crowded_min: int = 8
    crowded_max_occlusion: float = 0.5
    #: Focal length over image height (pixels/pixels): 1.67 in the synthetic world, 1.92 on
    #: KITTI (721 / 375), ~1.4 on BDD100K; a 30% error moves a band edge by 30%.
    focal_per_height: float = 1.7
    #: Typical real height (m) per class, for distance = focal * height / box height.
    object_height_m: Mapping[str, float] = field(
        default_factory=lambda: {
            "car": 1.5,
            "truck": 3.2,
            "pedestrian": 1.75,
            "cyclist": 1.75,
            "golf_cart": 1.8,
        }
    )


def derive_situations(
    frame: FrameRecord, taxonomy: Taxonomy, settings: DeriveSettings | None = None
) -> dict[str, bool]:
    """The object-level situations of a frame whose objects are labelled ({} when they are
    not); only situations of ``taxonomy``, and only those the boxes settle."""
    if frame.boxes is None:
        return {}
    s = settings or DeriveSettings()
    parts = [
        b for b in frame.boxes if b.category in PARTICIPANTS and not b.attributes.get("iscrowd")
    ]
    out: dict[str, bool | None] = {
        "pedestrian_present": any(b.category == "pedestrian" for b in parts)
    }
    visible = [_half_visible(b, s) for b in parts]
    seen, unknown = visible.count(True), visible.count(None)
    out["crowded"] = (
        True if seen >= s.crowded_min else (False if seen + unknown < s.crowded_min else None)
    )
    near, far, unsure_near, unsure_far = False, False, False, False
    for b in parts:
        d, exact = _distance(b, frame.height, s)
        if d is None:
            unsure_near = unsure_far = True
            continue
        near |= d <= s.close_m  # a cut box looks farther than it is: its "close" still holds
        if exact:
            far |= d > s.far_m
        else:
            unsure_far = True
    out["close_participant"] = True if near else (None if unsure_near else False)
    out["far_participant"] = True if far else (None if unsure_far else False)
    return {k: v for k, v in out.items() if v is not None and k in taxonomy}


def derive_all(
    frames: Iterable[FrameRecord], taxonomy: Taxonomy, settings: DeriveSettings | None = None
) -> dict[str, dict[str, bool]]:
    """Frame name -> derived situations, for the frames with labelled objects."""
    out = {}
    for frame in frames:
        if frame.boxes is not None:
            out[frame.name] = derive_situations(frame, taxonomy, settings)
    return out


def _half_visible(box: Box, s: DeriveSettings) -> bool | None:
    """Whether at least half of the object shows: from an occlusion ratio, KITTI's level (0
    fully visible, 1 partly, 2 largely occluded, 3 unknown) or, with only a flag, when the
    object is not occluded at all; None when that cannot tell."""
    ratio = _number(box.attributes.get("occlusion"))
    if ratio is not None:
        return ratio <= s.crowded_max_occlusion
    level = box.attributes.get("kitti_occlusion")
    if level in (0, 1, 2):
        return level <= 1
    return True if not box.occluded else None


def _distance(box: Box, image_height: int | None, s: DeriveSettings) -> tuple[float | None, bool]:
    """(distance in m, whether it is exact enough for "far"): the labelled one, else from
    the box height (an occluded or truncated box is cut, so it only bounds the distance)."""
    labelled = _number(box.attributes.get("distance"))
    if labelled is not None and labelled > 0:
        return labelled, True
    height = s.object_height_m.get(box.category)
    if height is None or not image_height or box.height <= 0:
        return None, False
    estimate = s.focal_per_height * image_height * height / box.height
    return estimate, not (box.occluded or box.truncated)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
