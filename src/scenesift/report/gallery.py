"""Galleries for the report: the frames a campaign picked per round, as small JPEG
thumbnails with the truth boxes, the round model's stored predictions and situation tags,
and class activation maps of the latest tagger on a few of them.

Everything is read from the catalog (tables ``campaigns``, ``rounds``, ``picks``, ``boxes``)
with plain SQL: no model is loaded for the thumbnails. A simulated campaign does not store
its models' predictions (only human rounds write the pre-annotations they export), so its
thumbnails show the truth only and say so.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from scenesift.records import Box, FrameRecord
from scenesift.store import Store, StoreError, campaigns
from scenesift.store.campaigns import RoundInfo
from scenesift.store.inventory import model_boxes

THUMB_WIDTH = 320
TRUTH_COLOR = (34, 197, 94)  # green
PRED_COLOR = (249, 115, 22)  # orange
MIN_SCORE = 0.3  # predictions drawn from this score up (stored ones may go down to ~0)
TAGGER_DIR = Path("models") / "tagger"  # checkpoints and their sidecars (pipelines.tagger)


@dataclass
class Thumb:
    src: str  # data URI
    name: str
    caption: str = ""
    tags: list[str] = field(default_factory=list)
    tags_from: str = ""  # "labels" | "tagger" | ""
    badge: str = ""


@dataclass
class GalleryRound:
    idx: int
    title: str
    detail: str
    thumbs: list[Thumb]


@dataclass
class Gallery:
    campaign: str
    detail: str
    rounds: list[GalleryRound]
    note: str = ""
    cams: list[Thumb] = field(default_factory=list)
    cam_note: str = ""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def campaign_names(store: Store) -> list[str]:
    """Campaigns, newest first."""
    return campaigns.names(store)[::-1]


def _scaled(box: Box, sx: float, sy: float) -> tuple[float, float, float, float]:
    return (box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy)


def thumbnail(
    rec: FrameRecord,
    truth: Sequence[Box] | None,
    predicted: Sequence[Box] | None,
    width: int = THUMB_WIDTH,
) -> str:
    """A JPEG data URI ``width`` px wide: truth boxes green, predictions orange."""
    try:
        with Image.open(rec.path) as im:
            im.draft("RGB", (width, width))  # JPEG: decode at reduced scale, much faster
            im = im.convert("RGB")
            w0, h0 = rec.width or im.width, rec.height or im.height
            height = max(1, round(width * im.height / im.width))
            im = im.resize((width, height), Image.Resampling.BILINEAR)
    except OSError:
        height = round(width * 9 / 16)
        im = Image.new("RGB", (width, height), (200, 200, 200))
        ImageDraw.Draw(im).text((8, height // 2), "image not readable", fill=(60, 60, 60))
        w0, h0 = rec.width or width, rec.height or height
    draw = ImageDraw.Draw(im)
    sx, sy = width / w0, height / h0
    for b in predicted or ():
        draw.rectangle(_scaled(b, sx, sy), outline=PRED_COLOR, width=2)
    for b in truth or ():
        draw.rectangle(_scaled(b, sx, sy), outline=TRUTH_COLOR, width=1)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80, optimize=True)
    return data_uri(buf.getvalue(), "image/jpeg")


def not_predicted(store: Store, source: str) -> set[str]:
    """Situations the tagger behind ``source`` was not trained on, from its checkpoint's
    sidecar (``models/tagger/<fingerprint>.json``; empty when there is none): scores of
    theirs in the store come from an earlier prelabel of the same model and mean nothing."""
    side = store.root / TAGGER_DIR / f"{source.removeprefix('model:')}.json"
    try:
        listed = json.loads(side.read_text(encoding="utf-8")).get("not_predicted", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {s for s in listed if isinstance(s, str)}


def _tagger_tags(store: Store, names: set[str]) -> tuple[dict[str, list[str]], str | None]:
    """The latest tagger's positive situations per frame, as it stored them: of an
    exclusive group at most the highest score (``Taxonomy.decide``), and only situations
    it was trained on."""
    source = store.latest_model_source()
    if source is None:
        return {}, None
    tax = store.taxonomy
    thresholds = store.decision_thresholds(source)
    untrained = not_predicted(store, source)
    tags = {}
    for rec in store.records(predictions=source, names=names):
        scored = [s for s in tax.names if s in rec.situation_scores and s not in untrained]
        values = tax.decide([[rec.situation_scores[s] for s in scored]], scored, thresholds,
                            float("inf"))[0]  # fmt: skip
        tags[rec.name] = [s for s, v in zip(scored, values, strict=True) if v]
    return tags, source


def _spread(items: list, k: int) -> list:
    """At most ``k`` items, first and last included, evenly spaced."""
    if len(items) <= k:
        return items
    idx = sorted({round(i) for i in np.linspace(0, len(items) - 1, k)})
    return [items[i] for i in idx]


def _span(idx: Sequence[int]) -> str:
    """'round 3' or 'rounds 0-4' (or 'rounds 0, 2, 5' when not consecutive)."""
    if len(idx) == 1:
        return f"round {idx[0]}"
    if list(idx) == list(range(idx[0], idx[-1] + 1)):
        return f"rounds {idx[0]}-{idx[-1]}"
    return "rounds " + ", ".join(map(str, idx))


def _rounds_text(rounds: Sequence[RoundInfo]) -> str:
    """How many rounds picked frames, and which did not (the last round of a finished
    campaign trains and evaluates the final model without picking), so the count matches
    the rounds the gallery shows."""
    picked = [r.idx for r in rounds if r.n_picks > 0]
    final = [r.idx for r in rounds if r.n_picks == 0 and r.status == "final"]
    waiting = [r.idx for r in rounds if r.n_picks == 0 and r.status != "final"]
    n = sum(r.n_picks for r in rounds)
    text = f"{_span(picked)} picked {n:,} frames" if picked else "no round picked frames yet"
    if final:
        text += f"; {_span(final)} trained and evaluated the final model (no picks)"
    if waiting:
        text += f"; {_span(waiting)} has not picked yet"
    return text


def campaign_gallery(
    store: Store,
    campaign: str | None = None,
    per_round: int = 6,
    max_rounds: int = 12,
    min_score: float = MIN_SCORE,
) -> Gallery | None:
    """The first ``per_round`` picks (by rank) of each round of ``campaign`` (default: the
    latest); None when the project has no campaign. Unknown names raise StoreError."""
    if campaign is None:
        row = campaigns.latest(store)
        if row is None:
            return None
    else:
        row = campaigns.get(store, campaign)
    name, config = row.name, row.config
    rounds = campaigns.rounds(store, row.id)
    with_picks = [r for r in rounds if r.n_picks > 0]
    shown = _spread(with_picks, max_rounds)
    picks = {r.id: campaigns.top_picks(store, r.id, per_round) for r in shown}
    names = {p.frame_name for rows in picks.values() for p in rows}
    records = {r.name: r for r in store.records(names=names)} if names else {}
    tagger_tags, tagger = _tagger_tags(store, names) if names else ({}, None)
    strategy = config.get("strategy", {}).get("name", "?")
    detail = (
        f"strategy {strategy}, labeler {config.get('labeler', '?')}, initial "
        f"{config.get('initial', '?')} frames, then {config.get('batch', '?')} per round; "
        f"{_rounds_text(rounds)}"
    )
    out_rounds = []
    any_predictions = False
    for rnd in shown:
        fp, metrics, shown_picks = rnd.model_fingerprint, rnd.metrics, picks[rnd.id]
        preds = None
        if fp:
            preds = model_boxes(store, f"model:{fp}", [p.frame_id for p in shown_picks],
                                 min_score, cap=30)  # fmt: skip
        any_predictions |= preds is not None
        thumbs = []
        for p in shown_picks:
            fname = p.frame_name
            rec = records.get(fname)
            if rec is None:
                continue
            truth_tags = sorted(s for s, v in rec.situations.items() if v)
            tags, tags_from = (truth_tags, "labels") if truth_tags else (
                sorted(tagger_tags.get(fname, [])), "tagger" if fname in tagger_tags else ""
            )  # fmt: skip
            src = thumbnail(rec, rec.boxes, None if preds is None else preds.get(p.frame_id))
            score_text = "" if p.score is None else f", score {p.score:.3g}"
            n_truth = "not labelled" if rec.boxes is None else f"{len(rec.boxes)} boxes"
            thumbs.append(Thumb(src, fname, f"#{p.rank + 1}{score_text}, {n_truth}", tags,
                                tags_from, "" if p.review == "pending" else p.review))  # fmt: skip
        bits = [f"{rnd.n_picks:,} picked", f"status {rnd.status}"]
        if metrics.get("n_labelled") is not None:
            bits.append(f"model trained on {metrics['n_labelled']:,} frames")
        if metrics.get("map50") is not None:
            bits.append(f"its mAP@0.5 {metrics['map50']:.3f}")
        by = shown_picks[0].strategy if shown_picks else strategy
        title = f"Round {rnd.idx}: {by}"
        if fp is None:
            bits.append("no model (random initial set)")
        elif preds is None:
            bits.append(f"model {fp[:10]}: predictions not stored")
        else:
            bits.append(f"model {fp[:10]}: predictions in orange")
        out_rounds.append(GalleryRound(rnd.idx, title, "; ".join(bits), thumbs))
    note = ""
    if len(with_picks) > len(shown):
        note = f"Showing {len(shown)} of {len(with_picks)} rounds (first, last, evenly spaced). "
    if not any_predictions and with_picks:
        note += (
            "No round model stored predictions for its picks (simulated campaigns do not): "
            "boxes are the truth only. "
        )
    if tagger is None:
        note += "Situation tags come from labels; no tagger predictions are stored."
    return Gallery(name, detail, out_rounds, note.strip())


# ------------------------------------------------------------------------------ CAMs
def _overlay(rec: FrameRecord, heat: np.ndarray, width: int = THUMB_WIDTH) -> str:
    from matplotlib import colormaps

    with Image.open(rec.path) as im:
        im.draft("RGB", (width, width))
        im = im.convert("RGB")
        height = max(1, round(width * im.height / im.width))
        im = im.resize((width, height), Image.Resampling.BILINEAR)
    h = Image.fromarray(heat.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    rgba = colormaps["inferno"](np.clip(np.asarray(h), 0, 1))
    colour = (rgba[..., :3] * 255).astype(np.float32)
    mixed = 0.55 * np.asarray(im, np.float32) + 0.45 * colour
    buf = io.BytesIO()
    Image.fromarray(mixed.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=80)
    return data_uri(buf.getvalue(), "image/jpeg")


def tagger_cams(store: Store, names: Sequence[str], k: int = 4) -> tuple[list[Thumb], str]:
    """Class activation maps of the latest tagger for up to ``k`` of ``names``: per frame,
    the map of its rarest positive situation (labels, else the tagger's own call), so the
    picture shows where the tagger sees what made the frame unusual. (thumbs, note)"""
    from scenesift.pipelines.checkpoints import latest

    try:
        latest(store.root / "models" / "tagger", "tagger")
    except StoreError as e:
        return [], f"No class activation maps: {e}."
    import torch

    from scenesift.models.images import make_loader
    from scenesift.pipelines import tagger as pipe

    try:
        tagger, path = pipe.load(store)
    except StoreError as e:
        return [], f"No class activation maps: {e}"
    records = [r for r in store.records(names=set(names)) if Path(r.path).exists()]
    order = {n: i for i, n in enumerate(names)}
    records = sorted(records, key=lambda r: order.get(r.name, 0))[:k]
    if not records:
        return [], "No class activation maps: none of the picked images is readable."
    pre = tagger.net.backbone.preprocessing
    images = torch.cat([b.images for b in make_loader([r.path for r in records], pre, 8)])
    maps = tagger.cam(images)  # (N, S, h, w) logits per pixel
    probs = 1.0 / (1.0 + np.exp(-maps.mean(axis=(2, 3))))  # pooled: the tagger's scores
    # only what the tagger was trained on: an untrained situation's map is the head's noise
    every = list(tagger.situations)
    situations = [s for s in every if s in set(tagger.trained)]
    if not situations:
        return [], "No class activation maps: the latest tagger was trained on no situation."
    maps = maps[:, [every.index(s) for s in situations]]
    probs = probs[:, [every.index(s) for s in situations]]
    decided = store.taxonomy.decide(probs, situations, {})  # the tagger's calls at 0.5
    positive = [
        [s for s in situations if r.situations.get(s)] or
        [s for j, s in enumerate(situations) if decided[i, j]]
        for i, r in enumerate(records)
    ]  # fmt: skip
    prevalence = {s: sum(s in p for p in positive) for s in situations}
    thumbs = []
    for i, rec in enumerate(records):
        cands = positive[i] or situations
        s = min(cands, key=lambda x: (prevalence[x], -probs[i, situations.index(x)]))
        j = situations.index(s)
        logit = maps[i, j]
        span = float(logit.max() - logit.min())
        heat = (logit - logit.min()) / span if span > 1e-6 else np.zeros_like(logit)
        why = "labelled" if rec.situations.get(s) else "predicted"
        thumbs.append(Thumb(_overlay(rec, heat), rec.name,
                            f"{s} ({why}), tagger score {probs[i, j]:.2f}"))  # fmt: skip
    return thumbs, (
        f"Tagger {Path(path).stem[:10]}: bright = where the per-pixel logit of the named "
        "situation is highest, scaled per frame from its lowest to its highest pixel (so "
        "a weak tagger still shows where it looks; the score says how sure it is)."
    )
