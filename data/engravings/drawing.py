"""Scene rendering: the whole plate, back to front, at the image size (supersampled)."""

from __future__ import annotations

import random

from PIL import Image

from . import buildings, nature
from .buildings import ruin
from .canvas import Canvas
from .scene import Scene
from .scenery import draw_backdrop, draw_flakes, draw_flock, draw_ground, draw_sky
from .vocabulary import ASPECT, KINDS, ON_WATER, WIDTH_ALLOWANCE


def supersampling(image_size: int) -> int:
    """Anti-aliasing factor: draw this many times larger, then box-downsample.

    2x up to 256 px (cheap there); small images are drawn at >= 128 px so that
    thin strokes and hatching keep their proportions; 1x above 256 px.
    """
    if image_size > 256:
        return 1
    return max(2, -(-128 // max(1, image_size)))


def draw_scene(scene: Scene, image_size: int, rng: random.Random, supersample: int | None = None) -> Image.Image:
    """Draw ``scene`` as a grayscale ("L") engraving of ``image_size`` pixels."""
    ss = supersampling(image_size) if supersample is None else max(1, int(supersample))
    if ss > 1:
        return _draw_scene(scene, image_size * ss, rng).reduce(ss)
    return _draw_scene(scene, image_size, rng)


def _layout(scene: Scene, cv: Canvas, gy: float, inset: float, slot_w: float, rng: random.Random) -> list:
    """(obj, x, base, w, h) of every drawn object: a group of ``count`` side by side in its slot."""
    S = cv.S
    margin = inset + 0.015 * S
    placed = []
    for obj in scene.objects:
        large = obj.size == "large"
        h = S * (rng.uniform(0.44, 0.5) if large else rng.uniform(0.19, 0.22))
        w = ASPECT[obj.kind] * h
        if obj.count == 1:
            wmax = S * (0.29 if large else 0.17) * WIDTH_ALLOWANCE.get(obj.kind, 1.0)
        else:
            wmax = 0.95 * slot_w / (1 + 0.92 * (obj.count - 1))
        if w > wmax:
            h *= wmax / w
            w = wmax
        center = inset + slot_w * (obj.slot + 0.5) + rng.uniform(-0.02, 0.02) * S
        step = 0.92 * w
        for k in range(obj.count):
            x = center + (k - (obj.count - 1) / 2) * step
            # keep the object (with eaves, sails and roots) inside the border
            x = min(max(x, margin + 0.56 * w), S - margin - 0.56 * w)
            hk = h * (1.0 - 0.06 * (k % 2))
            if obj.kind in ON_WATER:
                base = gy + S * (rng.uniform(0.05, 0.07) if large else rng.uniform(0.025, 0.035))
            else:
                base = gy + S * (rng.uniform(0.02, 0.05) if large else rng.uniform(0.0, 0.015))
            placed.append((obj, x, base, w, hk))
    return placed


def _draw_scene(scene: Scene, image_size: int, rng: random.Random) -> Image.Image:
    """The whole plate, back to front: sky, backdrop, ground, objects, birds, falling snow or leaves, margin.
    Every part draws from the one ``rng``, in this order (the bundled set depends on it)."""
    cv = Canvas(image_size, rng, scene.technique)
    S = cv.S
    inset = max(1.0, round(0.03 * S))  # the plate's margin
    gy = S * rng.uniform(0.66, 0.72)  # the horizon
    slot_w = (S - 2 * inset) / 3  # slots tile the inside of the plate border
    placed = _layout(scene, cv, gy, inset, slot_w, rng)

    body_slot = scene.sky_slot if scene.sky_slot is not None else rng.randrange(3)
    body_x = inset + slot_w * (body_slot + 0.5) + rng.uniform(-0.04, 0.04) * S
    lit = scene.sky in ("sun", "crescent moon", "full moon")
    sd = (1 if body_x < S / 2 else -1) if lit else rng.choice((-1, 1))  # shadows fall on this side (+1: right)

    body_y, body_r, sky_boxes = draw_sky(cv, scene, gy, inset, slot_w, body_x, sd, rng)
    draw_backdrop(cv, scene, placed, gy, inset, sd, rng)
    draw_ground(cv, scene, placed, gy, inset, slot_w, rng)
    _draw_objects(cv, placed, sd, rng)
    if scene.birds:
        keep_clear = [(x - w / 2, base - h, x + w / 2, base) for _, x, base, w, h in placed] + sky_boxes
        if lit:
            rr = body_r * 2.0
            keep_clear.append((body_x - rr, body_y - rr, body_x + rr, body_y + rr))
        draw_flock(cv, scene.birds, keep_clear, gy, inset, rng)
    if scene.weather == "snow":  # falling over everything
        draw_flakes(cv, inset, inset, S - inset, S - inset, 45, rng)
    elif scene.season == "autumn":
        draw_flakes(cv, inset, inset, S - inset, S - inset, 18, rng, leaves=True)
    _draw_margin(cv, inset)
    return cv.img


_DRAWERS = {**nature.DRAWERS, **buildings.DRAWERS}  # kind -> its drawer
assert set(_DRAWERS) == set(KINDS)


def _draw_objects(cv, placed, sd, rng):
    """Every placed object with its cast shadow (none on water), ruined where its state says: mountains first,
    then small (far) before large (near)."""
    order = sorted(placed, key=lambda p: (p[0].kind != "mountain", p[0].size == "large", p[0].slot))
    for obj, x, base, w, h in order:
        if obj.kind not in ("ship", "boat", "bridge"):
            for k in range(2):
                yy = base + (k + 0.5) * cv.hw * 1.5
                cv.line([(x, yy), (x + sd * w * rng.uniform(0.45, 0.7), yy)], width=cv.hw)
        _DRAWERS[obj.kind](cv, x, base, w, h, rng, sd, obj)
        if obj.state == "ruined":
            ruin(cv, x, base, w, h, rng)


def _draw_margin(cv, inset):
    """The plate's paper margin, ``inset`` wide, over anything drawn into it, and the border line inside it."""
    ii = int(inset)
    size = cv.size
    cv.d.rectangle([0, 0, size - 1, ii - 1], fill=cv.paper)
    cv.d.rectangle([0, size - ii, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([0, 0, ii - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([size - ii, 0, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([ii, ii, size - 1 - ii, size - 1 - ii], outline=cv.ink, width=cv.ow)
