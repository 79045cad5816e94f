"""A synthetic driving world: labelled dashcam drives in BDD100K/Scalabel format.

Deterministic and fast, with what makes fleet data hard to label well: near-duplicate
frames within a drive, rare situations (fog, snow, tunnels, roadworks) and a rare class
(golf carts), and objects that are small, occluded, truncated, in the dark or in fog.

>>> from scenesift.synth import generate
>>> summary = generate("world", n_frames=500, seed=0, progress=False)  # doctest: +SKIP
"""

from scenesift.synth.config import WorldConfig, default_world_config, read_generation
from scenesift.synth.render import Label, frame_attributes, render_frame, situations_of
from scenesift.synth.sheet import contact_sheet
from scenesift.synth.world import (
    CLASSES,
    PARTICIPANTS,
    DrivePlan,
    FrameState,
    ObjectState,
    PropState,
    RenderSettings,
    plan_drive,
    simulate_drive,
)
from scenesift.synth.writer import SynthSummary, frame_record, frame_rng, generate

__all__ = [
    "CLASSES",
    "PARTICIPANTS",
    "DrivePlan",
    "FrameState",
    "Label",
    "ObjectState",
    "PropState",
    "RenderSettings",
    "SynthSummary",
    "WorldConfig",
    "contact_sheet",
    "default_world_config",
    "frame_attributes",
    "frame_record",
    "frame_rng",
    "generate",
    "plan_drive",
    "read_generation",
    "render_frame",
    "simulate_drive",
    "situations_of",
]
