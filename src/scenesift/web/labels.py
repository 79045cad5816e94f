"""Saving a labeller's situation labels: validated, versioned, one transaction.

A save is the labeller's whole statement about the frame's situations: it replaces the
frame's ``human`` situation labels, marks the frame ``labelled``, bumps
``frames.label_version`` and records who saved (table ``label_saves``), all in one
transaction (:func:`scenesift.store.browse.save_situation_labels`). The request names the
``label_version`` the labeller's page read, so of two labellers saving the same frame the
second is refused (:class:`StaleVersion`, HTTP 409) instead of silently overwriting the first.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from scenesift.store import Store
from scenesift.store.browse import LabelSave, StaleVersion, UnknownFrame, save_situation_labels
from scenesift.taxonomy import Taxonomy

__all__ = ["LabelError", "SaveLabels", "StaleVersion", "UnknownFrame", "save_labels"]


class SaveLabels(BaseModel):
    """The body of ``POST /api/frames/{id}/labels``. Strict types: a version is a JSON
    integer and a value a JSON boolean (never ``1e400``, ``NaN``, ``"yes"`` or ``1.0``)."""

    model_config = ConfigDict(extra="forbid")

    label_version: StrictInt = Field(ge=0, le=2**62, description="the version the page read")
    labeller: str = Field(min_length=1, max_length=100, description="who is saving")
    situations: dict[str, StrictBool] = Field(
        description="situation -> value; a situation left out is missing (not negative)",
        max_length=1000,
    )

    @field_validator("labeller")
    @classmethod
    def _name(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("enter your name (it is recorded with every save)")
        if any(not ch.isprintable() for ch in v):
            raise ValueError("the labeller name must be printable text")
        return v


class LabelError(ValueError):
    """The labels contradict the taxonomy (unknown name, two members of one group)."""


def check_values(taxonomy: Taxonomy, values: dict[str, bool]) -> dict[str, bool]:
    """Validate against the taxonomy and add the negatives a group positive implies."""
    unknown = [name for name in values if name not in taxonomy]
    if unknown:
        raise LabelError(
            f"unknown situation{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown[:10])}; the project knows "
            f"{', '.join(taxonomy.names)}"
        )
    if not values:
        raise LabelError("no situation values to save: choose at least one")
    for group, members in taxonomy.groups().items():
        on = [m for m in members if values.get(m)]
        if len(on) > 1:
            raise LabelError(
                f"situations {', '.join(on)} are exclusive (group {group!r}): choose one"
            )
    return taxonomy.complete_groups(values)


def save_labels(store: Store, taxonomy: Taxonomy, frame_id: int, request: SaveLabels) -> LabelSave:
    """Write the labels; raises LabelError, UnknownFrame or StaleVersion."""
    values = check_values(taxonomy, request.situations)
    return save_situation_labels(store, frame_id, request.label_version, request.labeller, values)
