"""A plain folder of unlabelled images: the start of the bring-your-own-detector flow.

Every image under the folder (recursively; hidden folders skipped) becomes a frame named
by its path relative to the folder, with no labels. Drive and timestamp come from the
path through a *pattern*: a regular expression with a named group ``drive`` and,
optionally, ``time`` (seconds) or ``frame`` (an index, divided by the pattern's frame
rate). Presets cover the layouts most teams have:

* ``bdd100k``: ``<video>-<frame>.jpg`` (``b1c66a42-6f7d68ca-0000001.jpg``, 5 fps as in the
  BDD100K tracking set); a keyframe of the 100K set (``b1c66a42-6f7d68ca.jpg``) is its own
  drive, the video it was taken from, as ``import bdd`` reads its ``videoName``;
* ``kitti-raw``: ``<date>_drive_<nnnn>_sync/image_0X/data/<frame>.png`` at 10 Hz.

Images the pattern does not match are each their own drive, counted in the report.
Image sizes are probed; unreadable or corrupt files are listed and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scenesift.errors import ConfigError
from scenesift.io.common import ImageProblem, Track, probe_image, relative_name, tracked
from scenesift.records import FrameRecord, ImportBatch, ImportReport

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class NamePattern:
    """How a frame's drive and timestamp are read from its path (see the module doc)."""

    regex: str
    fps: float | None = None  # frames per second, for a ``frame`` group

    def __post_init__(self) -> None:
        try:
            groups = re.compile(self.regex).groupindex
        except re.error as e:
            raise ConfigError(f"--pattern is not a regular expression: {e}") from None
        if "drive" not in groups:
            raise ConfigError("--pattern needs a named group (?P<drive>...) for the drive")
        if "frame" in groups and not self.fps:
            raise ConfigError("--pattern with a (?P<frame>...) group needs a frame rate (fps)")

    def parse(self, name: str) -> tuple[str, float | None] | None:
        """(drive, timestamp) of a frame name, or None when the pattern does not match."""
        m = re.search(self.regex, name)
        if m is None or not m.group("drive"):
            return None
        groups = m.groupdict()
        if groups.get("time") is not None:
            return m.group("drive"), float(groups["time"])
        if groups.get("frame") is not None and self.fps:
            return m.group("drive"), int(groups["frame"]) / self.fps
        return m.group("drive"), None


PRESETS: dict[str, NamePattern] = {
    "bdd100k": NamePattern(
        r"(?:^|/)(?P<drive>[0-9a-f]{8}-[0-9a-f]{8})(?:-(?P<frame>\d+))?\.jpe?g$", fps=5.0
    ),
    "kitti-raw": NamePattern(
        r"(?:^|/)(?P<drive>\d{4}_\d{2}_\d{2}_drive_\d{4}(?:_sync|_extract)?)"
        r"/image_0[0-3]/data/(?P<frame>\d+)\.png$",
        fps=10.0,
    ),
}


def name_pattern(spec: str | None, fps: float | None = None) -> NamePattern | None:
    """A preset name (bdd100k, kitti-raw) or a regular expression; None: no pattern."""
    if spec is None:
        return None
    if spec in PRESETS:
        preset = PRESETS[spec]
        return preset if fps is None else NamePattern(preset.regex, fps)
    return NamePattern(spec, fps)


def read_folder(
    folder: Path,
    *,
    pattern: NamePattern | None = None,
    verify_images: bool = True,
    track: Track | None = None,
) -> ImportBatch:
    """Every image under ``folder`` as an unlabelled frame; nothing is written."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigError(f"{folder}: expected a folder of images")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    report = ImportReport(source=f"folder:{root}")
    frames: list[FrameRecord] = []
    unmatched = 0
    for path in tracked(paths, track):
        name = relative_name(path, root)
        try:
            width, height = probe_image(path, verify_images)
        except ImageProblem as e:
            report.skipped_images.append((str(path), str(e)))
            continue
        parsed = pattern.parse(name) if pattern is not None else None
        if parsed is None:
            unmatched += pattern is not None
            drive, timestamp = name, None
        else:
            drive, timestamp = parsed
        frames.append(FrameRecord(name, path, drive, width, height, timestamp=timestamp))
    if not frames and not report.skipped_images:
        raise ConfigError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if pattern is not None and frames and unmatched == len(frames):
        raise ConfigError(
            f"--pattern {pattern.regex!r} matches none of the {len(frames)} images "
            f"(first: {frames[0].name!r}); drives come from the pattern's (?P<drive>...) group"
        )
    report.unmatched_names = unmatched
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=root, report=report)
