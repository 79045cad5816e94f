"""Saving a labeller's situation labels: validated, versioned, one transaction.

A save is the labeller's whole statement about the frame's situations: it replaces the
frame's ``human`` situation labels, marks the frame ``labelled``, bumps
``frames.label_version`` and records who saved (table ``label_saves``), all in one
``Store.transaction()``. The request names the ``label_version`` the labeller's page read;
the version bump is ``... WHERE id = ? AND label_version = ?``, so of two labellers saving
the same frame the second is refused (:class:`StaleVersion`, HTTP 409) instead of silently
overwriting the first.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scenesift.store import Store
from scenesift.store.project import now
from scenesift.taxonomy import Taxonomy
from scenesift.web.queries import LabelSave, last_save


class SaveLabels(BaseModel):
    """The body of ``POST /api/frames/{id}/labels``."""

    model_config = ConfigDict(extra="forbid")

    label_version: int = Field(ge=0, le=2**62, description="the version the page read")
    labeller: str = Field(min_length=1, max_length=100, description="who is saving")
    situations: dict[str, bool] = Field(
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


class StaleVersion(Exception):
    """Someone saved the frame after the labeller's page read it."""

    def __init__(self, frame_id: int, read: int, current: int, last: LabelSave | None) -> None:
        super().__init__(frame_id, read, current)
        self.frame_id, self.read, self.current, self.last = frame_id, read, current, last

    def message(self) -> str:
        who = (
            f" by {self.last.labeller} at {self.last.saved_at}"
            if self.last and self.last.label_version == self.current
            else ""
        )
        return (
            f"frame {self.frame_id} was saved{who} after you opened it (you read version "
            f"{self.read}, it is now version {self.current}); your labels were NOT saved: "
            "reload the frame to see the current labels, then save again"
        )


class UnknownFrame(LookupError):
    pass


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
    stamp = now()
    with store.transaction() as c:
        cur = c.execute(
            "UPDATE frames SET label_version = label_version + 1, state = 'labelled', "
            "updated_at = ? WHERE id = ? AND label_version = ?",
            (stamp, frame_id, request.label_version),
        )
        if cur.rowcount != 1:
            row = c.execute("SELECT label_version FROM frames WHERE id = ?", (frame_id,)).fetchone()
            if row is None:
                raise UnknownFrame(frame_id)
            raise StaleVersion(frame_id, request.label_version, row[0], last_save(c, frame_id))
        version = request.label_version + 1
        c.execute(
            "DELETE FROM situation_labels WHERE frame_id = ? AND source = 'human'", (frame_id,)
        )
        c.executemany(
            "INSERT INTO situation_labels (frame_id, situation, source, value, confidence, "
            "created_at) VALUES (?, ?, 'human', ?, NULL, ?)",
            [(frame_id, name, int(v), stamp) for name, v in values.items()],
        )
        c.execute(
            "INSERT INTO label_saves (frame_id, label_version, labeller, saved_at, situations) "
            "VALUES (?, ?, ?, ?, ?)",
            (frame_id, version, request.labeller, stamp, json.dumps(values, sort_keys=True)),
        )
    return LabelSave(request.labeller, stamp, version)
