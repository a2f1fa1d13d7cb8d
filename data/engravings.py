"""Procedural "engraving" dataset: black line art with hatching, plus captions.

Every item is a small scene drawn on light paper: a horizon, optional sky
hatching, one to three objects standing in left / center / right slots
(ships, trees, houses, mountains, figures, windmills, churches, bridges,
castles, towers, lighthouses), and optional scenery (a mountain range or
hills in the distance, birds, the sun, a crescent or full moon, clouds).
The caption is produced from the same scene description that drives the
drawing, so every object drawn is named with its size and position, and
nothing is named that is not drawn.

Generation is deterministic: item ``index`` with ``seed`` always produces the
same scene and caption, and the same PNG bytes for a given image size,
regardless of worker count or order, because each item uses its own
``random.Random`` seeded from ``(seed, index)``.

Usage::

    python data/engravings.py --out DIR [--num-items N] [--image-size S]
    python -m data.engravings --out DIR

The output follows the Hugging Face ``imagefolder`` convention:
``DIR/images/00000.png ...`` and ``DIR/metadata.jsonl`` with rows
``{"file_name": "images/00000.png", "text": "<caption>"}``.  The metadata
file is written last and atomically, so its presence marks a complete set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, ImageDraw

__all__ = [
    "DEFAULT_NUM_ITEMS",
    "DEFAULT_IMAGE_SIZE",
    "MAX_CAPTION_WORDS",
    "KINDS",
    "SIZES",
    "POSITIONS",
    "SKIES",
    "BACKDROPS",
    "PlacedObject",
    "Scene",
    "make_scene",
    "caption_for",
    "draw_scene",
    "render",
    "generate",
    "ensure_sample",
    "main",
]

DEFAULT_NUM_ITEMS = 5141
DEFAULT_IMAGE_SIZE = 128
MAX_CAPTION_WORDS = 24

# Objects that occupy a slot (named with size and position in the caption).
KINDS = (
    "ship",
    "tree",
    "pine",
    "house",
    "mountain",
    "figure",
    "windmill",
    "church",
    "bridge",
    "castle",
    "tower",
    "lighthouse",
)
SIZES = ("small", "large")
POSITIONS = ("left", "center", "right")
POSITION_PHRASES = {"left": "on the left", "center": "in the center", "right": "on the right"}

# Scenery (named without size / position).
SKIES = ("sun", "crescent moon", "full moon", "clouds")
SKY_PHRASES = {
    "sun": "under a shining sun",
    "crescent moon": "under a crescent moon",
    "full moon": "under a full moon",
    "clouds": "under a cloudy sky",
}
BACKDROPS = ("mountains", "hills", "mountain")
BACKDROP_PHRASES = {
    "mountains": "mountains in the distance",
    "hills": "hills in the distance",
    "mountain": "a mountain behind it",  # only with a single object
}

# Width / height ratio of each kind and how much wider than a slot it may be.
_ASPECT = {
    "ship": 0.85,
    "tree": 0.75,
    "pine": 0.5,
    "house": 0.9,
    "mountain": 1.25,
    "figure": 0.4,
    "windmill": 0.8,
    "church": 0.8,
    "bridge": 2.0,
    "castle": 1.0,
    "tower": 0.36,
    "lighthouse": 0.42,
}
_WIDTH_ALLOWANCE = {"mountain": 1.15, "bridge": 1.3, "house": 1.05, "castle": 1.05}


# --------------------------------------------------------------------------
# Scene description and caption grammar
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedObject:
    kind: str  # one of KINDS
    size: str  # "small" | "large"
    position: str  # "left" | "center" | "right"

    @property
    def slot(self) -> int:
        return POSITIONS.index(self.position)

    def phrase(self) -> str:
        return f"a {self.size} {self.kind} {POSITION_PHRASES[self.position]}"


@dataclass(frozen=True)
class Scene:
    """Everything the caption talks about; the renderer draws exactly this."""

    objects: tuple  # tuple[PlacedObject, ...], ordered left to right
    backdrop: Optional[str] = None  # one of BACKDROPS or None
    birds: int = 0  # number of birds drawn (0 = none)
    sky: Optional[str] = None  # one of SKIES or None

    @property
    def night(self) -> bool:
        return self.sky in ("crescent moon", "full moon")

    def kinds(self) -> list:
        return [o.kind for o in self.objects]


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_for(scene: Scene) -> str:
    """The caption grammar: objects left to right, then scenery."""
    text = "an engraving of " + _join([o.phrase() for o in scene.objects])
    extras = []
    if scene.backdrop is not None:
        extras.append(BACKDROP_PHRASES[scene.backdrop])
    if scene.birds == 1:
        extras.append("a bird flying overhead")
    elif scene.birds > 1:
        extras.append("birds flying overhead")
    if extras:
        text += " with " + " and ".join(extras)
    if scene.sky is not None:
        text += " " + SKY_PHRASES[scene.sky]
    return text


def _scene_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"engraving-{seed}-{index}")


def make_scene(index: int, seed: int = 0) -> Scene:
    """The scene of item ``index`` (independent of the image size)."""
    rng = _scene_rng(index, seed)
    n = rng.choices((1, 2, 3), weights=(35, 40, 25))[0]
    slots = sorted(rng.sample(range(3), n))
    objects = tuple(
        PlacedObject(rng.choice(KINDS), rng.choice(SIZES), POSITIONS[s]) for s in slots
    )
    backdrops = [None, None, "mountains", "hills"]
    if n == 1 and objects[0].kind != "mountain":
        backdrops.append("mountain")
    backdrop = rng.choice(backdrops)
    birds = rng.choice((0, 0, 0, 1, 2, 3, 4, 5))
    sky = rng.choice((None,) + SKIES)
    scene = Scene(objects, backdrop, birds, sky)
    # Keep captions short: drop scenery (it is then not drawn either).
    while len(caption_for(scene).split()) > MAX_CAPTION_WORDS:
        present = [
            name
            for name, on in (
                ("backdrop", scene.backdrop is not None),
                ("birds", scene.birds > 0),
                ("sky", scene.sky is not None),
            )
            if on
        ]
        drop = rng.choice(present)
        scene = Scene(
            scene.objects,
            None if drop == "backdrop" else scene.backdrop,
            0 if drop == "birds" else scene.birds,
            None if drop == "sky" else scene.sky,
        )
    return scene


# --------------------------------------------------------------------------
# Drawing primitives
# --------------------------------------------------------------------------


def _halfplanes(poly):
    """Half-planes (a, b, c) with a*x + b*y <= c whose intersection is ``poly`` (convex)."""
    n = len(poly)
    cx = sum(p[0] for p in poly) / n
    cy = sum(p[1] for p in poly) / n
    out = []
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        a, b = y1 - y0, x0 - x1
        if a == 0 and b == 0:
            continue
        c = a * x0 + b * y0
        if a * cx + b * cy > c:
            a, b, c = -a, -b, -c
        out.append((a, b, c))
    return out


def _shade_side(x0, sd):
    """Points on the shaded side (sign ``sd``) of the vertical line x = x0."""
    return (-sd, 0.0, -sd * x0)


def _below(y0):
    """Points with y >= y0 (lower in the image)."""
    return (0.0, -1.0, -y0)


def _above(y0):
    """Points with y <= y0 (higher in the image)."""
    return (0.0, 1.0, y0)


class _Canvas:
    def __init__(self, size: int, rng: random.Random):
        self.size = size
        self.S = float(size)
        self.rng = rng
        self.paper = rng.randint(236, 249)
        self.ink = rng.randint(10, 45)
        self.img = Image.new("L", (size, size), self.paper)
        self.d = ImageDraw.Draw(self.img)
        self.ow = max(1, round(size / 80))  # outline width
        self.hw = max(1, round(size / 128))  # hatch width
        self.sp = max(2.0, size / 42)  # hatch spacing

    # -- basic strokes ----------------------------------------------------
    def line(self, pts, width=None, fill=None):
        pts = [(float(x), float(y)) for x, y in pts]
        w = self.ow if width is None else width
        col = self.ink if fill is None else fill
        if len(pts) > 2 and w > 2:
            self.d.line(pts, fill=col, width=w, joint="curve")
        else:
            self.d.line(pts, fill=col, width=w)

    def shape(self, pts, width=None, fill=True):
        pts = [(float(x), float(y)) for x, y in pts]
        if fill:
            self.d.polygon(pts, fill=self.paper)
        self.line(pts + [pts[0]], width=width)

    def disk(self, cx, cy, r, fill=None, outline=True, width=None):
        w = self.ow if width is None else width
        self.d.ellipse(
            [cx - r, cy - r, cx + r, cy + r],
            fill=self.paper if fill is None else fill,
            outline=self.ink if outline else None,
            width=w if outline else 0,
        )

    def solid(self, pts, fill=None):
        self.d.polygon([(float(x), float(y)) for x, y in pts], fill=self.ink if fill is None else fill)

    # -- hatching -----------------------------------------------------------
    def hatch(
        self,
        poly=None,
        circle=None,
        planes=(),
        angle=45.0,
        spacing=1.0,
        width=None,
        cross=False,
        trim=0.35,
    ):
        """Parallel strokes clipped to a convex polygon and/or circle and half-planes."""
        hp = list(planes)
        if poly is not None:
            hp += _halfplanes(poly)
            xs = [p[0] for p in poly]
            ys = [p[1] for p in poly]
            box = [min(xs), min(ys), max(xs), max(ys)]
        if circle is not None:
            ccx, ccy, cr = circle
            cbox = [ccx - cr, ccy - cr, ccx + cr, ccy + cr]
            if poly is None:
                box = cbox
            else:
                box = [max(box[0], cbox[0]), max(box[1], cbox[1]), min(box[2], cbox[2]), min(box[3], cbox[3])]
        if box[2] <= box[0] or box[3] <= box[1]:
            return
        sp = self.sp * spacing
        w = self.hw if width is None else width
        rng = self.rng
        draw_line = self.d.line
        ink = self.ink
        corners = ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3]))
        for ang in (angle, angle + 90.0) if cross else (angle,):
            th = math.radians(ang)
            dx, dy = math.cos(th), math.sin(th)
            nx, ny = -dy, dx
            ts = [nx * x + ny * y for x, y in corners]
            ss = [dx * x + dy * y for x, y in corners]
            s_lo, s_hi = min(ss) - 1.0, max(ss) + 1.0
            t = min(ts) + rng.uniform(0.15, 0.85) * sp
            t_end = max(ts)
            dens = [(a * dx + b * dy, a, b, c) for a, b, c in hp]
            while t < t_end:
                px, py = nx * t, ny * t
                lo, hi = s_lo, s_hi
                ok = True
                for den, a, b, c in dens:
                    num = c - (a * px + b * py)
                    if abs(den) < 1e-9:
                        if num < 0:
                            ok = False
                            break
                        continue
                    s = num / den
                    if den > 0:
                        if s < hi:
                            hi = s
                    elif s > lo:
                        lo = s
                if ok and circle is not None:
                    qx, qy = px - ccx, py - ccy
                    bq = qx * dx + qy * dy
                    disc = bq * bq - (qx * qx + qy * qy - cr * cr)
                    if disc <= 0:
                        ok = False
                    else:
                        sq = math.sqrt(disc)
                        lo = max(lo, -bq - sq)
                        hi = min(hi, -bq + sq)
                if ok and hi - lo > 1.0:
                    if trim:
                        cut = trim * sp
                        lo += rng.uniform(0.0, cut)
                        hi -= rng.uniform(0.0, cut)
                    if hi - lo > 0.8:
                        draw_line(
                            [(px + dx * lo, py + dy * lo), (px + dx * hi, py + dy * hi)],
                            fill=ink,
                            width=w,
                        )
                t += sp


# --------------------------------------------------------------------------
# Objects.  Each drawer gets the slot center x, the base line b, the width w
# and height h in pixels, the RNG and the shaded side sd (+1 = right).
# --------------------------------------------------------------------------


def _crenellated(x0, x1, y_top, merlon_h, n, base):
    """Polygon of a wall from x0..x1 with n merlons on top, standing on ``base``."""
    pts = [(x0, base), (x0, y_top - merlon_h)]
    step = (x1 - x0) / (2 * n - 1)
    x = x0
    for i in range(2 * n - 1):
        top = y_top - merlon_h if i % 2 == 0 else y_top
        nxt = x + step
        if i > 0:
            pts.append((x, top))
        pts.append((nxt, top))
        if i < 2 * n - 2:
            ntop = y_top if i % 2 == 0 else y_top - merlon_h
            pts.append((nxt, ntop))
        x = nxt
    pts.append((x1, base))
    return pts


def _arch_points(x0, x1, base, rise, n=10):
    """Round-topped opening from x0..x1 whose feet are on ``base``."""
    cx = (x0 + x1) / 2
    r = (x1 - x0) / 2
    spring = base - max(0.0, rise - r)
    pts = [(x0, base)]
    for i in range(n + 1):
        a = math.pi - math.pi * i / n
        pts.append((cx + r * math.cos(a), spring - min(r, rise) * math.sin(a)))
    pts.append((x1, base))
    return pts


def _dark_opening(cv, pts):
    cv.shape(pts)
    cv.hatch(poly=pts, angle=0, spacing=0.55, trim=0)
    cv.hatch(poly=pts, angle=90, spacing=0.8, trim=0)


def _draw_ship(cv, x, b, w, h, rng, sd):
    m = rng.choice((-1, 1))  # bow direction

    def P(u, v):
        return (x + m * u * w, b - v * h)

    hull = [P(-0.5, 0.27), P(0.5, 0.22), P(0.36, -0.03), P(-0.4, -0.03)]
    n_masts = rng.choice((1, 2, 3))
    mast_us = {1: [0.0], 2: [-0.2, 0.16], 3: [-0.28, -0.02, 0.24]}[n_masts]
    half = {1: 0.24, 2: 0.16, 3: 0.12}[n_masts]
    tops = []
    for i, u in enumerate(mast_us):
        top = 1.0 if (i == len(mast_us) // 2) else rng.uniform(0.8, 0.9)
        tops.append((u, top))
        deck = 0.25
        cv.line([P(u, deck), P(u, top)], width=cv.ow)
        n_sails = 2 if top < 0.92 else rng.choice((2, 3))
        v0, v1 = 0.36, top - 0.07
        step = (v1 - v0) / n_sails
        for k in range(n_sails):
            sb, st = v0 + k * step + 0.01, v0 + (k + 1) * step
            hh = half * (1.0 - 0.12 * k)
            belly = rng.uniform(0.03, 0.06)
            pts = [P(u - hh, st), P(u + hh, st), P(u + hh * 1.05, sb)]
            for j in range(1, 6):
                f = j / 6
                pts.append(P(u + hh * 1.05 - 2.1 * hh * f, sb - belly * math.sin(math.pi * f)))
            pts.append(P(u - hh * 1.05, sb))
            cv.shape(pts)
            mx = x + m * u * w
            cv.hatch(poly=pts, planes=[_shade_side(mx, sd)], angle=90, spacing=1.25)
        cv.line([P(u, top), P(u - 0.09, top - 0.035), P(u, top - 0.07)], width=cv.hw)
    # rigging and bowsprit
    cv.line([P(0.5, 0.22), P(0.64, 0.36)], width=cv.ow)
    cv.line([P(0.64, 0.36), P(tops[-1][0], tops[-1][1] - 0.02)], width=cv.hw)
    cv.line([P(-0.5, 0.27), P(tops[0][0], tops[0][1] - 0.02)], width=cv.hw)
    cv.shape(hull)
    cv.hatch(poly=hull, angle=rng.uniform(-6, 6), spacing=0.7)
    # a paper band with gun ports
    y_band = b - 0.15 * h
    cv.line([P(-0.47, 0.15), P(0.45, 0.13)], width=max(1, cv.ow), fill=cv.paper)
    n_ports = max(2, int(w / (cv.sp * 2.2)))
    for k in range(n_ports):
        u = -0.38 + 0.76 * (k + 0.5) / n_ports
        px, _ = P(u, 0.0)
        r = max(0.6, 0.018 * w)
        cv.d.rectangle([px - r, y_band - r, px + r, y_band + r], fill=cv.ink)
    # water at the waterline
    for k in range(3):
        wx = x + rng.uniform(-0.45, 0.3) * w
        ww = rng.uniform(0.12, 0.2) * w
        cv.d.arc([wx, b - 0.02 * h, wx + ww, b + 0.05 * h + 2], 200, 340, fill=cv.ink, width=cv.hw)


def _draw_tree(cv, x, b, w, h, rng, sd):
    tw = 0.09 * w
    lean = rng.uniform(-0.04, 0.04) * w
    trunk = [(x - tw, b), (x + tw, b), (x + 0.6 * tw + lean, b - 0.5 * h), (x - 0.6 * tw + lean, b - 0.5 * h)]
    cv.shape(trunk)
    cv.hatch(poly=trunk, planes=[_shade_side(x, sd)], angle=90, spacing=0.7, trim=0)
    # roots
    cv.line([(x - tw, b), (x - 2.2 * tw, b + 0.01 * h)], width=cv.hw)
    cv.line([(x + tw, b), (x + 2.2 * tw, b + 0.01 * h)], width=cv.hw)
    # foliage: a clump of circles whose union gets one outline
    crown_cy = b - 0.69 * h
    big = 0.33 * w
    circles = [(x + lean, crown_cy, big)]
    k = rng.randint(5, 7)
    a0 = rng.uniform(0, 2 * math.pi)
    for i in range(k):
        a = a0 + 2 * math.pi * i / k + rng.uniform(-0.3, 0.3)
        r = rng.uniform(0.19, 0.24) * w
        ex = max(0.0, 0.5 * w - r)
        ey = max(0.0, 0.31 * h - r)
        circles.append((x + lean + ex * math.cos(a), crown_cy + ey * math.sin(a), r))
    top_r = 0.22 * w
    circles.append((x + lean, b - h + top_r, top_r))
    for cx, cy, r in circles:
        cv.disk(cx, cy, r + cv.ow, fill=cv.ink, outline=False)
    for cx, cy, r in circles:
        cv.disk(cx, cy, r, outline=False)
    nx, ny = sd / math.sqrt(2), 1 / math.sqrt(2)
    ang = 45.0 if sd > 0 else 135.0
    for cx, cy, r in circles:
        # shade the lower side facing away from the light
        plane = (-nx, -ny, -(nx * (x + lean) + ny * crown_cy) + 0.05 * w)
        cv.hatch(circle=(cx, cy, r), planes=[plane], angle=ang, spacing=0.85)
    for cx, cy, r in circles[1:]:
        plane = (-nx, -ny, -(nx * cx + ny * cy) - 0.2 * r)
        cv.hatch(circle=(cx, cy, r * 0.95), planes=[plane], angle=ang + 90, spacing=1.0)
    # leaf marks on the lit side
    for _ in range(rng.randint(3, 6)):
        lx = x + lean - sd * rng.uniform(0.05, 0.35) * w
        ly = crown_cy + rng.uniform(-0.25, 0.1) * h
        s = rng.uniform(0.05, 0.08) * w
        cv.d.arc([lx - s, ly - s, lx + s, ly + s], 20, 160, fill=cv.ink, width=cv.hw)


def _draw_pine(cv, x, b, w, h, rng, sd):
    tw = 0.07 * w
    trunk = [(x - tw, b), (x + tw, b), (x + tw, b - 0.2 * h), (x - tw, b - 0.2 * h)]
    cv.shape(trunk)
    cv.hatch(poly=trunk, angle=90, spacing=0.7, trim=0)
    tiers = rng.choice((3, 4))
    step = 0.86 / (tiers - 1 + 1.7)
    th = 1.7 * step
    for i in range(tiers):
        vb = 0.14 + i * step
        va = min(1.0, vb + th) if i < tiers - 1 else 1.0
        half = 0.5 * w * (1.0 - 0.2 * i) * rng.uniform(0.92, 1.0)
        yb = b - vb * h
        apex = (x, b - va * h)
        tri = [(x - half, yb), (x, yb + 0.025 * h), (x + half, yb), apex]
        cv.shape(tri)
        cv.hatch(poly=tri, planes=[_shade_side(x, sd)], angle=90 - sd * 30, spacing=0.75)
        cv.hatch(poly=tri, planes=[_below(yb - 0.25 * th * h)], angle=0, spacing=1.4)


def _draw_house(cv, x, b, w, h, rng, sd):
    m = rng.choice((-1, 1))

    def P(u, v):
        return (x + m * u * w, b - v * h)

    eave = rng.uniform(0.48, 0.56)
    wall = [P(-0.4, 0), P(0.4, 0), P(0.4, eave), P(-0.4, eave)]
    # chimney (behind the roof)
    cu = rng.uniform(0.14, 0.26)
    chim = [P(cu - 0.05, 0.7), P(cu + 0.05, 0.7), P(cu + 0.05, 0.95), P(cu - 0.05, 0.95)]
    cv.shape(chim)
    cv.hatch(poly=chim, angle=90, spacing=0.8, trim=0)
    cv.shape(wall)
    if rng.random() < 0.5:
        cv.hatch(poly=wall, angle=0, spacing=1.7)
    else:
        wx = x
        cv.hatch(poly=wall, planes=[_shade_side(wx, sd)], angle=90, spacing=1.2)
    hipped = rng.random() < 0.35
    if hipped:
        roof = [P(-0.5, eave - 0.02), P(0.5, eave - 0.02), P(0.22, 0.93), P(-0.22, 0.93)]
    else:
        roof = [P(-0.5, eave - 0.02), P(0.5, eave - 0.02), P(0.0, 1.0)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.8)
    cv.hatch(poly=roof, planes=[_shade_side(x, sd)], angle=sd * 35, spacing=0.8)
    # door and windows
    du = rng.uniform(-0.12, 0.12)
    door = [P(du - 0.07, 0), P(du + 0.07, 0), P(du + 0.07, 0.27), P(du - 0.07, 0.27)]
    _dark_opening(cv, door)
    n_win = rng.choice((1, 2))
    spots = [-0.27, 0.27] if n_win == 2 else [0.27 if du < 0 else -0.27]
    for u in spots:
        win = [P(u - 0.075, 0.29), P(u + 0.075, 0.29), P(u + 0.075, 0.42), P(u - 0.075, 0.42)]
        _dark_opening(cv, win)
        cv.line([P(u, 0.29), P(u, 0.42)], width=cv.hw, fill=cv.paper)
        cv.line([P(u - 0.075, 0.355), P(u + 0.075, 0.355)], width=cv.hw, fill=cv.paper)


def _draw_mountain(cv, x, b, w, h, rng, sd, light_outline=False):
    ua = rng.uniform(-0.12, 0.12)
    apex = (x + ua * w, b - h)
    left = (x - 0.5 * w, b)
    right = (x + 0.5 * w, b)

    def side(p0, p1, outward):
        pts = []
        for t in (0.3, 0.55, 0.8):
            px = p0[0] + (p1[0] - p0[0]) * t
            py = p0[1] + (p1[1] - p0[1]) * t
            j = rng.uniform(0.0, 0.035) * w
            pts.append((px + outward[0] * j, py + outward[1] * j))
        return pts

    poly = [left] + side(left, apex, (-0.7, -0.7)) + [apex] + side(apex, right, (0.7, -0.7)) + [right]
    width = cv.hw if light_outline else None
    cv.shape(poly, width=width)
    foot = (x + (ua + sd * rng.uniform(0.1, 0.2)) * w, b)
    corner = right if sd > 0 else left
    face = [apex, corner, foot]
    snow = b - rng.uniform(0.72, 0.82) * h
    ang = 90 - sd * 25
    cv.hatch(poly=face, planes=[_below(snow)], angle=ang, spacing=0.75 if not light_outline else 1.1)
    # ridge line and some strokes on the lit face near the foot
    mid = ((apex[0] + foot[0]) / 2 + rng.uniform(-0.04, 0.04) * w, (apex[1] + foot[1]) / 2)
    cv.line([apex, mid, foot], width=cv.hw)
    lit_corner = left if sd > 0 else right
    lit = [apex, foot, lit_corner]
    cv.hatch(poly=lit, planes=[_below(b - 0.35 * h)], angle=90 + sd * 30, spacing=1.7)


def _draw_figure(cv, x, b, w, h, rng, sd):
    m = rng.choice((-1, 1))
    r = 0.075 * h
    hy = b - h + r
    ys = hy + r + 0.03 * h
    hem = b - rng.uniform(0.3, 0.36) * h
    sw, hw_ = 0.11 * h, rng.uniform(0.14, 0.18) * h
    coat = [(x - sw, ys), (x + sw, ys), (x + hw_, hem), (x - hw_, hem)]
    # legs
    stride = rng.uniform(0.04, 0.1) * h
    cv.line([(x - 0.05 * h, hem), (x - stride, b)], width=cv.ow)
    cv.line([(x + 0.05 * h, hem), (x + stride, b)], width=cv.ow)
    cv.line([(x - stride, b), (x - stride + m * 0.06 * h, b)], width=cv.ow)
    cv.line([(x + stride, b), (x + stride + m * 0.06 * h, b)], width=cv.ow)
    cv.shape(coat)
    cv.hatch(poly=coat, angle=90 - sd * 30, spacing=0.8)
    cv.hatch(poly=coat, planes=[_shade_side(x, sd)], angle=90 + sd * 30, spacing=0.8)
    # arms
    hand = (x + m * 0.2 * h, b - 0.5 * h)
    cv.line([(x + m * sw, ys + 0.02 * h), hand], width=cv.ow)
    cv.line([(x - m * sw, ys + 0.02 * h), (x - m * 0.16 * h, b - 0.48 * h)], width=cv.ow)
    if rng.random() < 0.6:  # walking staff
        cv.line([(x + m * 0.24 * h, b), (x + m * 0.18 * h, b - 0.78 * h)], width=cv.ow)
    cv.disk(x, hy, r)
    if rng.random() < 0.6:  # hat
        brim = hy - 0.4 * r
        cv.line([(x - 1.8 * r, brim), (x + 1.8 * r, brim)], width=cv.ow)
        crown = [(x - r, brim), (x + r, brim), (x + 0.8 * r, brim - 1.2 * r), (x - 0.8 * r, brim - 1.2 * r)]
        cv.solid(crown)


def _draw_windmill(cv, x, b, w, h, rng, sd):
    tower = [(x - 0.24 * w, b), (x + 0.24 * w, b), (x + 0.14 * w, b - 0.6 * h), (x - 0.14 * w, b - 0.6 * h)]
    cv.shape(tower)
    cv.hatch(poly=tower, planes=[_shade_side(x + sd * 0.02 * w, sd)], angle=90, spacing=0.75)
    door = _arch_points(x - 0.06 * w, x + 0.06 * w, b, 0.17 * h)
    _dark_opening(cv, door)
    win_y = b - 0.38 * h
    cv.d.rectangle([x - 0.035 * w, win_y - 0.04 * h, x + 0.035 * w, win_y + 0.03 * h], fill=cv.ink)
    cap = [(x - 0.18 * w, b - 0.59 * h), (x + 0.18 * w, b - 0.59 * h), (x + 0.12 * w, b - 0.69 * h),
           (x, b - 0.74 * h), (x - 0.12 * w, b - 0.69 * h)]
    cv.shape(cap)
    cv.hatch(poly=cap, angle=0, spacing=0.8)
    hub = (x, b - 0.655 * h)
    L = min(0.34 * h, 0.52 * w)
    a0 = rng.uniform(0, math.pi / 2)
    turn = rng.choice((-1, 1))
    for k in range(4):
        a = a0 + k * math.pi / 2
        dx, dy = math.cos(a), -math.sin(a)
        px, py = -dy * turn, dx * turn  # perpendicular, same turning sense
        end = (hub[0] + dx * L, hub[1] + dy * L)
        sail = []
        for t, s in ((0.22, 0.0), (1.0, 0.0), (1.0, 0.3), (0.22, 0.22)):
            sail.append((hub[0] + dx * L * t + px * L * s, hub[1] + dy * L * t + py * L * s))
        cv.shape(sail, width=cv.hw)
        for t in (0.41, 0.61, 0.8):
            s = 0.22 + 0.08 * (t - 0.22) / 0.78
            p0 = (hub[0] + dx * L * t, hub[1] + dy * L * t)
            cv.line([p0, (p0[0] + px * L * s, p0[1] + py * L * s)], width=cv.hw)
        cv.line([hub, end], width=cv.ow)
    cv.disk(hub[0], hub[1], max(1.0, 0.025 * h), fill=cv.ink)


def _draw_church(cv, x, b, w, h, rng, sd):
    m = rng.choice((-1, 1))

    def X(u):
        return x + m * u * w

    def Y(v):
        return b - v * h

    def P(u, v):
        return (X(u), Y(v))

    nave = [P(-0.48, 0), P(0.12, 0), P(0.12, 0.34), P(-0.48, 0.34)]
    cv.shape(nave)
    cv.hatch(poly=nave, angle=0, spacing=1.8)
    roof = [P(-0.53, 0.33), P(0.12, 0.33), P(0.1, 0.52), P(-0.44, 0.52)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90 + m * 30, spacing=0.75)
    n_win = rng.choice((2, 3))
    for k in range(n_win):
        u = -0.4 + (0.46 * (k + 0.5) / n_win)
        x0, x1 = sorted((X(u - 0.035), X(u + 0.035)))
        win = _arch_points(x0, x1, Y(0.1), 0.17 * h, n=6)
        _dark_opening(cv, win)
    tower = [P(0.1, 0), P(0.42, 0), P(0.42, 0.63), P(0.1, 0.63)]
    cv.shape(tower)
    tx = X(0.26)
    cv.hatch(poly=tower, planes=[_shade_side(tx, sd)], angle=90, spacing=0.75)
    x0, x1 = sorted((X(0.21), X(0.31)))
    _dark_opening(cv, _arch_points(x0, x1, b, 0.2 * h, n=6))
    x0, x1 = sorted((X(0.2), X(0.32)))
    _dark_opening(cv, _arch_points(x0, x1, Y(0.45), 0.12 * h, n=6))
    spire = [P(0.07, 0.62), P(0.45, 0.62), P(0.26, rng.uniform(0.9, 0.94))]
    cv.shape(spire)
    cv.hatch(poly=spire, angle=90, spacing=0.9)
    cv.hatch(poly=spire, planes=[_shade_side(tx, sd)], angle=90 - sd * 35, spacing=0.8)
    top = spire[2][1]
    cv.line([(tx, top), (tx, Y(1.0))], width=cv.ow)
    cv.line([(tx - 0.05 * w, Y(0.975)), (tx + 0.05 * w, Y(0.975))], width=cv.ow)


def _draw_bridge(cv, x, b, w, h, rng, sd):
    """A stone bridge on round arches over water, reflected below, with ramps to the banks."""
    hump = rng.uniform(0.05, 0.2)
    half = 0.4

    def top(u):  # deck height (fraction of h), u in [-half, half]
        return 1.0 - hump * (u / half) ** 2

    n_arch = rng.choice((2, 3))
    pier = 0.06 * w
    span = (2 * half * w - (n_arch + 1) * pier) / n_arch
    par = 0.16
    # the deck rides just above round arches: lower the bridge to fit them
    rise = 0.5 * span + 0.15 * h
    h = min(h, (rise + 0.05 * w) / (1.0 - par - hump))
    # reflections of the arches in the water (drawn first, under everything)
    for k in range(n_arch):
        x0 = x - half * w + pier + k * (span + pier)
        x1 = x0 + span
        refl = [(px, 2 * b - py) for px, py in _arch_points(x0, x1, b, rise * 0.85)]
        cv.d.polygon(refl, fill=cv.paper)
        cv.hatch(poly=refl, angle=0, spacing=0.6, trim=0.4)
    for s in (-1, 1):  # abutments sloping down to the banks
        xe = x + s * half * w
        ramp = [(xe - s * 0.02 * w, b - top(half) * h), (x + s * 0.5 * w, b - 0.25 * h),
                (x + s * 0.5 * w, b), (xe - s * 0.02 * w, b)]
        cv.shape(ramp, width=cv.hw)
        cv.hatch(poly=ramp, angle=90 - s * 45, spacing=0.9)
    n = 12
    deck = [(x + w * (-half + 2 * half * i / n), b - h * top(-half + 2 * half * i / n)) for i in range(n + 1)]
    body = [(x - half * w, b)] + deck + [(x + half * w, b)]
    cv.shape(body)
    rail = [(px, py + par * h) for px, py in deck]
    cv.line(rail, width=cv.hw)
    band = [(x - half * w, b - (top(half) - par) * h)] + deck + [(x + half * w, b - (top(half) - par) * h)]
    cv.hatch(poly=band, angle=90, spacing=1.1, trim=0)
    for k in range(n_arch):
        x0 = x - half * w + pier + k * (span + pier)
        x1 = x0 + span
        pts = _arch_points(x0, x1, b, rise)
        cv.shape(pts)
        cv.hatch(poly=pts, angle=0, spacing=0.6, trim=0)
        cv.hatch(poly=pts, planes=[_shade_side((x0 + x1) / 2, -sd)], angle=90, spacing=0.9, trim=0)
        # voussoirs
        cxm, r = (x0 + x1) / 2, span / 2
        spring = b - max(0.0, rise - r)
        ry = min(r, rise)
        for j in range(1, 6):
            a = math.pi * j / 6
            ca, sa = math.cos(a), math.sin(a)
            p0 = (cxm + r * ca, spring - ry * sa)
            p1 = (cxm + (r + 0.07 * h) * ca, spring - (ry + 0.07 * h) * sa)
            cv.line([p0, p1], width=cv.hw)
    cv.line([(x - 0.5 * w, b), (x + 0.5 * w, b)], width=cv.hw)


def _draw_castle(cv, x, b, w, h, rng, sd):
    mh = max(1.5, 0.06 * h)
    keep = _crenellated(x - 0.17 * w, x + 0.17 * w, b - 0.8 * h, mh, 4, b)
    cv.shape(keep)
    cv.hatch(poly=[(x - 0.17 * w, b), (x + 0.17 * w, b), (x + 0.17 * w, b - 0.8 * h), (x - 0.17 * w, b - 0.8 * h)],
             planes=[_shade_side(x, sd)], angle=90, spacing=0.8)
    cv.d.rectangle([x - 0.02 * w, b - 0.68 * h, x + 0.02 * w, b - 0.58 * h], fill=cv.ink)
    wall = _crenellated(x - 0.36 * w, x + 0.36 * w, b - 0.48 * h, mh, 7, b)
    cv.shape(wall)
    wall_box = [(x - 0.36 * w, b), (x + 0.36 * w, b), (x + 0.36 * w, b - 0.48 * h), (x - 0.36 * w, b - 0.48 * h)]
    cv.hatch(poly=wall_box, angle=0, spacing=1.6)
    _dark_opening(cv, _arch_points(x - 0.08 * w, x + 0.08 * w, b, 0.26 * h))
    roofs = rng.random() < 0.4
    for s in (-1, 1):
        x0, x1 = sorted((x + s * 0.27 * w, x + s * 0.5 * w))
        top = b - (0.74 if roofs else 0.9) * h
        if roofs:
            body = [(x0, b), (x1, b), (x1, top), (x0, top)]
            cv.shape(body)
            cone = [(x0 - 0.03 * w, top), (x1 + 0.03 * w, top), ((x0 + x1) / 2, b - h)]
            cv.shape(cone)
            cv.hatch(poly=cone, angle=90, spacing=0.8)
        else:
            cv.shape(_crenellated(x0, x1, b - 0.9 * h, mh, 3, b))
        box = [(x0, b), (x1, b), (x1, top), (x0, top)]
        if s == sd:
            cv.hatch(poly=box, angle=90, spacing=0.75)
        else:
            cv.hatch(poly=box, planes=[_shade_side((x0 + x1) / 2, sd)], angle=90, spacing=1.0)
        cx = (x0 + x1) / 2
        for v in (0.35, 0.6):
            cv.line([(cx, b - v * h), (cx, b - (v + 0.08) * h)], width=max(cv.ow, 1), fill=cv.ink)


def _draw_tower(cv, x, b, w, h, rng, sd):
    top_v = 0.74
    body = [(x - 0.42 * w, b), (x + 0.42 * w, b), (x + 0.36 * w, b - top_v * h), (x - 0.36 * w, b - top_v * h)]
    cv.shape(body)
    # cylinder shading: strokes crowd towards the shaded edge
    for k in range(7):
        f = 0.36 - 0.3 * (k / 6) ** 1.4
        if f < 0.02:
            break
        xa = x + sd * (f + 0.03) * w
        xb = x + sd * f * w
        cv.line([(xa, b - 0.01 * h), (xb, b - (top_v - 0.01) * h)], width=cv.hw)
    # stone courses on the lit side
    for v in (0.15, 0.3, 0.45, 0.6):
        xx = x - sd * rng.uniform(0.1, 0.3) * w
        cv.line([(xx - 0.06 * w, b - v * h), (xx + 0.06 * w, b - v * h)], width=cv.hw)
    _dark_opening(cv, _arch_points(x - 0.13 * w, x + 0.13 * w, b, 0.15 * h, n=6))
    for v in (0.35, 0.55):
        cv.line([(x, b - v * h), (x, b - (v + 0.07) * h)], width=max(cv.ow, 2 if cv.size >= 96 else 1))
    if rng.random() < 0.5:
        band = [(x - 0.46 * w, b - top_v * h), (x + 0.46 * w, b - top_v * h),
                (x + 0.46 * w, b - 0.8 * h), (x - 0.46 * w, b - 0.8 * h)]
        cv.shape(band)
        cv.hatch(poly=band, angle=90, spacing=0.7, trim=0)
        cv.shape(_crenellated(x - 0.46 * w, x + 0.46 * w, b - 0.93 * h, 0.07 * h, 3, b - 0.8 * h))
        flag_top = b - h
        cv.line([(x, b - 0.93 * h), (x, flag_top)], width=cv.hw)
    else:
        cone = [(x - 0.5 * w, b - (top_v - 0.01) * h), (x + 0.5 * w, b - (top_v - 0.01) * h), (x, b - h)]
        cv.shape(cone)
        cv.hatch(poly=cone, angle=90, spacing=0.85)
        cv.hatch(poly=cone, planes=[_shade_side(x, sd)], angle=90 - sd * 30, spacing=0.85)


def _draw_lighthouse(cv, x, b, w, h, rng, sd):
    rock = [(x - 0.55 * w, b)]
    for u, v in ((-0.4, 0.06), (-0.15, 0.1), (0.15, 0.1), (0.4, 0.06)):
        rock.append((x + (u + rng.uniform(-0.04, 0.04)) * w, b - (v + rng.uniform(-0.02, 0.02)) * h))
    rock.append((x + 0.55 * w, b))
    cv.shape(rock)
    cv.hatch(poly=[(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.3 * w, b - 0.08 * h), (x - 0.3 * w, b - 0.08 * h)],
             angle=90 - sd * 40, spacing=0.8)
    base_v, top_v = 0.08, 0.7
    tower = [(x - 0.3 * w, b - base_v * h), (x + 0.3 * w, b - base_v * h),
             (x + 0.18 * w, b - top_v * h), (x - 0.18 * w, b - top_v * h)]
    cv.shape(tower)
    cv.hatch(poly=tower, planes=[_shade_side(x + sd * 0.1 * w, sd)], angle=90, spacing=1.0)
    n_bands = rng.choice((2, 3))
    for k in range(n_bands):
        v0 = base_v + (top_v - base_v) * (k + 0.5) / (n_bands + 0.5)
        v1 = v0 + (top_v - base_v) * 0.45 / (n_bands + 0.5)
        cv.hatch(poly=tower, planes=[_below(b - v1 * h), _above(b - v0 * h)], angle=0, spacing=0.55, trim=0)
        cv.hatch(poly=tower, planes=[_below(b - v1 * h), _above(b - v0 * h)], angle=90, spacing=0.7, trim=0)
    gal = [(x - 0.28 * w, b - top_v * h), (x + 0.28 * w, b - top_v * h),
           (x + 0.28 * w, b - (top_v + 0.03) * h), (x - 0.28 * w, b - (top_v + 0.03) * h)]
    cv.shape(gal)
    cv.line([(x - 0.26 * w, b - 0.78 * h), (x + 0.26 * w, b - 0.78 * h)], width=cv.hw)
    for u in (-0.26, 0.0, 0.26):
        cv.line([(x + u * w, b - 0.73 * h), (x + u * w, b - 0.78 * h)], width=cv.hw)
    lantern = [(x - 0.13 * w, b - 0.73 * h), (x + 0.13 * w, b - 0.73 * h),
               (x + 0.13 * w, b - 0.84 * h), (x - 0.13 * w, b - 0.84 * h)]
    cv.shape(lantern)
    cv.line([(x, b - 0.73 * h), (x, b - 0.84 * h)], width=cv.hw)
    roof = [(x - 0.19 * w, b - 0.84 * h), (x + 0.19 * w, b - 0.84 * h), (x, b - 0.95 * h)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.7, trim=0)
    cv.line([(x, b - 0.95 * h), (x, b - h)], width=cv.ow)
    ly = b - 0.785 * h
    for s in (-1, 1):
        for a in (rng.uniform(-0.35, -0.15), rng.uniform(0.15, 0.35)):
            x0 = x + s * 0.17 * w
            L = rng.uniform(0.35, 0.5) * w
            cv.line([(x0, ly), (x0 + s * L * math.cos(a), ly + L * math.sin(a))], width=cv.hw)


_DRAWERS = {
    "ship": _draw_ship,
    "tree": _draw_tree,
    "pine": _draw_pine,
    "house": _draw_house,
    "mountain": _draw_mountain,
    "figure": _draw_figure,
    "windmill": _draw_windmill,
    "church": _draw_church,
    "bridge": _draw_bridge,
    "castle": _draw_castle,
    "tower": _draw_tower,
    "lighthouse": _draw_lighthouse,
}
assert set(_DRAWERS) == set(KINDS)


# --------------------------------------------------------------------------
# Scenery
# --------------------------------------------------------------------------


def _sky_hatch(cv, y0, y1, spacing, x0, x1):
    cv.hatch(poly=[(x0, y0), (x1, y0), (x1, y1), (x0, y1)], angle=0, spacing=spacing, trim=1.5)


def _day_sky(cv, y0, y1, x0, x1, rng):
    """Horizontal sky strokes that thin out and break up towards the horizon."""
    y = y0 + cv.sp * 0.5
    while y < y1:
        depth = (y - y0) / max(1.0, y1 - y0)
        xx = x0
        while xx < x1:
            seg = (x1 - x0) * rng.uniform(0.25, 1.0) * (1.0 - 0.6 * depth)
            gap = (x1 - x0) * rng.uniform(0.03, 0.15) * (0.3 + 2.0 * depth)
            if rng.random() > 0.2 + 0.1 * depth:
                cv.line([(xx, y), (min(x1, xx + seg), y)], width=cv.hw)
            xx += seg + gap
        y += cv.sp * (1.0 + 1.6 * depth)


def _draw_range(cv, gy, rng, sd, inset):
    S = cv.S
    n_peaks = rng.randint(3, 5)
    xs = [inset + (S - 2 * inset) * (i + rng.uniform(0.3, 0.7)) / n_peaks for i in range(n_peaks)]
    pts = [(inset, gy - rng.uniform(0.02, 0.06) * S)]
    peaks = []
    for i, px in enumerate(xs):
        peak = (px, gy - rng.uniform(0.09, 0.2) * S)
        peaks.append(peak)
        pts.append(peak)
        nxt = xs[i + 1] if i + 1 < n_peaks else S - inset
        pts.append(((px + nxt) / 2, gy - rng.uniform(0.02, 0.06) * S))
    pts[-1] = (S - inset, pts[-1][1])
    cv.d.polygon([(inset, gy)] + pts + [(S - inset, gy)], fill=cv.paper)
    cv.line(pts, width=cv.hw)
    for i, peak in enumerate(peaks):
        j = 1 + 2 * i + (1 if sd > 0 else -1)
        valley = pts[j]
        face = [peak, valley, (valley[0], gy), (peak[0], gy)]
        if sd < 0:
            face = [peak, (peak[0], gy), (valley[0], gy), valley]
        cv.hatch(poly=face, angle=90 - sd * 30, spacing=1.1)


def _draw_hills(cv, gy, rng, inset):
    S = cv.S
    amp1, amp2 = rng.uniform(0.04, 0.07) * S, rng.uniform(0.02, 0.04) * S
    f1, f2 = rng.uniform(1.5, 2.5), rng.uniform(3.5, 5.5)
    p1, p2 = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    n = 40
    pts = []
    for i in range(n + 1):
        xx = inset + (S - 2 * inset) * i / n
        t = xx / S * 2 * math.pi
        yy = gy - 0.02 * S - amp1 * (0.5 + 0.5 * math.sin(f1 * t + p1)) - amp2 * (0.5 + 0.5 * math.sin(f2 * t + p2))
        pts.append((xx, yy))
    cv.d.polygon([(inset, gy)] + pts + [(S - inset, gy)], fill=cv.paper)
    cv.line(pts, width=cv.ow)
    # contour strokes following the slope
    for k in range(1, 3):
        off = k * cv.sp * 1.1
        i0 = rng.randint(0, n // 2)
        seg = [(px, py + off) for px, py in pts[i0:i0 + rng.randint(n // 4, n // 2)] if py + off < gy - 1]
        if len(seg) > 1:
            cv.line(seg, width=cv.hw)


def _draw_sun(cv, cx, cy, r, rng):
    n = rng.choice((12, 14, 16))
    a0 = rng.uniform(0, math.pi)
    cv.disk(cx, cy, r * 1.25, outline=False)
    for k in range(n):
        a = a0 + 2 * math.pi * k / n
        L = r * (1.75 if k % 2 == 0 else 1.45)
        cv.line([(cx + 1.25 * r * math.cos(a), cy + 1.25 * r * math.sin(a)),
                 (cx + L * math.cos(a), cy + L * math.sin(a))], width=cv.hw)
    cv.disk(cx, cy, r)
    cv.hatch(circle=(cx, cy, r * 0.8), planes=[_below(cy + 0.2 * r)], angle=0, spacing=1.0)


def _crescent(cx, cy, r, phi):
    d, r1 = 0.5, 0.85
    xi = (1 + d * d - r1 * r1) / (2 * d)
    yi = math.sqrt(max(0.0, 1 - xi * xi))
    alpha = math.atan2(yi, xi)
    beta = math.atan2(yi, xi - d)
    pts = []
    n = 24
    for i in range(n + 1):
        a = alpha + (2 * math.pi - 2 * alpha) * i / n
        pts.append((math.cos(a), math.sin(a)))
    for i in range(n + 1):
        a = (2 * math.pi - beta) - (2 * math.pi - 2 * beta) * i / n
        pts.append((d + r1 * math.cos(a), r1 * math.sin(a)))
    c, s = math.cos(phi), math.sin(phi)
    return [(cx + r * (px * c - py * s), cy + r * (px * s + py * c)) for px, py in pts]


def _draw_cloud(cv, cx, cy, cw, rng):
    k = rng.randint(3, 5)
    circles = []
    for i in range(k):
        t = (i + 0.5) / k - 0.5
        r = cw * rng.uniform(0.16, 0.24) * (1.0 - abs(t) * 0.8)
        circles.append((cx + t * cw * 0.85, cy - r * 0.6, r))
    for x, y, r in circles:
        cv.disk(x, y, r + cv.ow, fill=cv.ink, outline=False)
    for x, y, r in circles:
        cv.disk(x, y, r, outline=False)
    for x, y, r in circles:
        cv.hatch(circle=(x, y, r), planes=[_below(y + 0.15 * r)], angle=0, spacing=0.9)


def _draw_bird(cv, x, y, s, rng):
    lift = rng.uniform(0.25, 0.45)
    pts = [(x - s, y - lift * s), (x - 0.45 * s, y - 0.55 * s), (x, y),
           (x + 0.45 * s, y - 0.55 * s), (x + s, y - lift * s)]
    cv.d.line(pts, fill=cv.paper, width=cv.ow + 2, joint="curve")
    cv.d.line(pts, fill=cv.ink, width=cv.ow, joint="curve" if cv.ow > 2 else None)


def _draw_sea(cv, x0, x1, gy, bottom, rng):
    y = gy + cv.sp * 0.9
    while y < bottom:
        depth = (y - gy) / max(1.0, bottom - gy)
        aw = cv.S * (0.035 + 0.05 * depth)
        ah = max(2.0, aw * 0.35)
        xx = x0 + rng.uniform(0.0, aw)
        while xx + aw < x1:
            if rng.random() < 0.9:
                cv.d.arc([xx, y - ah / 2, xx + aw, y + ah / 2], 200, 340, fill=cv.ink, width=cv.hw)
            xx += aw * rng.uniform(1.0, 1.3)
        y += cv.sp * (0.8 + 0.9 * depth)


def _draw_river(cv, x0, x1, gy, bottom, rng):
    y = gy + cv.sp * 0.8
    while y < bottom:
        a = x0 + rng.uniform(0.0, 0.3) * (x1 - x0)
        bb = x1 - rng.uniform(0.0, 0.3) * (x1 - x0)
        cv.line([(a, y), (bb, y)], width=cv.hw)
        y += cv.sp * rng.uniform(1.1, 1.8)


def _draw_land(cv, x0, x1, gy, bottom, rng):
    n = max(3, int((x1 - x0) * (bottom - gy) / (cv.sp * cv.sp * 12)))
    for _ in range(n):
        y = gy + (bottom - gy) * rng.random() ** 0.8
        depth = (y - gy) / max(1.0, bottom - gy)
        L = cv.S * (0.03 + 0.07 * depth) * rng.uniform(0.6, 1.2)
        xx = rng.uniform(x0, max(x0, x1 - L))
        cv.line([(xx, y), (xx + L, y)], width=cv.hw)
        if rng.random() < 0.12:  # a tuft of grass
            for dx in (-1, 0, 1):
                cv.line([(xx + L * 0.5 + dx * cv.sp * 0.5, y), (xx + L * 0.5 + dx * cv.sp, y - cv.sp * 1.2)],
                        width=cv.hw)


# --------------------------------------------------------------------------
# Scene rendering
# --------------------------------------------------------------------------


def _draw_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"engraving-{seed}-{index}-strokes")


def supersampling(image_size: int) -> int:
    """Anti-aliasing factor: draw this many times larger, then box-downsample.

    2x up to 256 px (cheap there); small images are drawn at >= 128 px so that
    thin strokes and hatching keep their proportions; 1x above 256 px.
    """
    if image_size > 256:
        return 1
    return max(2, -(-128 // max(1, image_size)))


def draw_scene(scene: Scene, image_size: int, rng: random.Random, supersample: Optional[int] = None) -> Image.Image:
    """Draw ``scene`` as a grayscale ("L") engraving of ``image_size`` pixels."""
    ss = supersampling(image_size) if supersample is None else max(1, int(supersample))
    if ss > 1:
        return _draw_scene(scene, image_size * ss, rng).reduce(ss)
    return _draw_scene(scene, image_size, rng)


def _draw_scene(scene: Scene, image_size: int, rng: random.Random) -> Image.Image:
    cv = _Canvas(image_size, rng)
    S = cv.S
    inset = max(1.0, round(0.03 * S))
    bottom = S - inset
    gy = S * rng.uniform(0.66, 0.72)
    slot_w = (S - 2 * inset) / 3  # slots tile the inside of the plate border
    margin = inset + 0.015 * S

    # -- layout of the slot objects --------------------------------------------
    placed = []  # (obj, x, base, w, h)
    for obj in scene.objects:
        large = obj.size == "large"
        h = S * (rng.uniform(0.44, 0.5) if large else rng.uniform(0.19, 0.22))
        w = _ASPECT[obj.kind] * h
        wmax = S * (0.29 if large else 0.17) * _WIDTH_ALLOWANCE.get(obj.kind, 1.0)
        if w > wmax:
            h *= wmax / w
            w = wmax
        x = inset + slot_w * (obj.slot + 0.5) + rng.uniform(-0.02, 0.02) * S
        # keep the object (with eaves, sails and roots) inside the border
        x = min(max(x, margin + 0.56 * w), S - margin - 0.56 * w)
        if obj.kind == "ship":
            base = gy + S * (rng.uniform(0.05, 0.07) if large else rng.uniform(0.025, 0.035))
        else:
            base = gy + S * (rng.uniform(0.02, 0.05) if large else rng.uniform(0.0, 0.015))
        placed.append((obj, x, base, w, h))

    # sky body goes over the slot with the lowest object
    heights = [0.0, 0.0, 0.0]
    for obj, x, base, w, h in placed:
        heights[obj.slot] = h
    body_slot = min(range(3), key=lambda s: (heights[s], abs(s - 1) if rng.random() < 0.5 else -abs(s - 1)))
    body_x = inset + slot_w * (body_slot + 0.5) + rng.uniform(-0.04, 0.04) * S
    sd = (1 if body_x < S / 2 else -1) if scene.sky in ("sun", "crescent moon", "full moon") else rng.choice((-1, 1))

    # -- sky --------------------------------------------------------------------
    if scene.night:
        _sky_hatch(cv, inset, gy - 1, 0.95, inset, S - inset)
    elif rng.random() < 0.5:
        top = inset + rng.uniform(0.0, 0.03) * S
        _day_sky(cv, top, top + rng.uniform(0.18, 0.32) * S, inset, S - inset, rng)
    body_r = S * rng.uniform(0.055, 0.07)
    sky_boxes = []  # areas birds keep away from
    body_y = S * rng.uniform(0.14, 0.16)
    if scene.sky == "sun":
        _draw_sun(cv, body_x, body_y, body_r, rng)
    elif scene.sky == "crescent moon":
        cv.disk(body_x, body_y, body_r * 1.4, outline=False)
        phi = rng.uniform(-0.6, 0.6) + (0.0 if rng.random() < 0.5 else math.pi)
        moon = _crescent(body_x, body_y, body_r * 1.1, phi)
        cv.shape(moon)
    elif scene.sky == "full moon":
        cv.disk(body_x, body_y, body_r * 1.4, outline=False)
        cv.disk(body_x, body_y, body_r)
        cv.hatch(circle=(body_x, body_y, body_r), planes=[_shade_side(body_x + 0.45 * body_r, sd)],
                 angle=90, spacing=1.0)
    elif scene.sky == "clouds":
        n = rng.choice((1, 2, 2, 3))
        starts = rng.sample(range(3), n)
        for s in starts:
            cw = S * rng.uniform(0.2, 0.28)
            cx = inset + slot_w * (s + 0.5) + rng.uniform(-0.04, 0.04) * S
            cx = min(max(cx, inset + 0.6 * cw), S - inset - 0.6 * cw)
            cy = S * rng.uniform(0.14, 0.22)
            _draw_cloud(cv, cx, cy, cw, rng)
            sky_boxes.append((cx - 0.6 * cw, cy - 0.42 * cw, cx + 0.6 * cw, cy + 0.12 * cw))

    # -- backdrop -----------------------------------------------------------------
    if scene.backdrop == "mountains":
        _draw_range(cv, gy, rng, sd, inset)
    elif scene.backdrop == "hills":
        _draw_hills(cv, gy, rng, inset)
    elif scene.backdrop == "mountain":
        obj, x, base, w, h = placed[0]
        mw = S * rng.uniform(0.55, 0.7)
        apex_y = max(S * 0.1, min(gy - 0.28 * S, base - h - 0.08 * S))
        mx = min(max(x + rng.uniform(-0.08, 0.08) * S, inset + mw / 2), S - inset - mw / 2)
        _draw_mountain(cv, mx, gy, mw, gy - apex_y, rng, sd, light_outline=True)

    # -- ground: sea for ships, a river under bridges, land elsewhere ---------------
    cv.line([(inset, gy), (S - inset, gy)], width=cv.hw)
    kinds_at = {obj.slot: obj.kind for obj, *_ in placed}
    for s in range(3):
        x0, x1 = inset + s * slot_w, inset + (s + 1) * slot_w
        kind = kinds_at.get(s)
        if kind == "ship":
            _draw_sea(cv, x0, x1, gy, bottom, rng)
        elif kind == "bridge":
            _draw_river(cv, x0, x1, gy, bottom, rng)
        else:
            _draw_land(cv, x0, x1, gy, bottom, rng)

    # -- objects: mountains first, then small (far) before large (near) -------------
    order = sorted(placed, key=lambda p: (p[0].kind != "mountain", p[0].size == "large", p[0].slot))
    for obj, x, base, w, h in order:
        if obj.kind not in ("ship", "bridge"):
            # cast shadow on the ground
            for k in range(2):
                yy = base + (k + 0.5) * cv.hw * 1.5
                cv.line([(x, yy), (x + sd * w * rng.uniform(0.45, 0.7), yy)], width=cv.hw)
        _DRAWERS[obj.kind](cv, x, base, w, h, rng, sd)

    # -- birds --------------------------------------------------------------------
    if scene.birds:
        boxes = [(x - w / 2, base - h, x + w / 2, base) for _, x, base, w, h in placed] + sky_boxes
        if scene.sky in ("sun", "crescent moon", "full moon"):
            rr = body_r * 2.0
            boxes.append((body_x - rr, body_y - rr, body_x + rr, body_y + rr))
        drawn = 0
        tries = 0
        s_base = S * rng.uniform(0.028, 0.038)
        while drawn < scene.birds:
            tries += 1
            s = s_base * rng.uniform(0.8, 1.15)
            bx = rng.uniform(inset + 2 * s, S - inset - 2 * s)
            by = rng.uniform(S * 0.08, min(S * 0.34, gy - 0.1 * S))
            me = (bx - 1.2 * s, by - 1.2 * s, bx + 1.2 * s, by + 0.6 * s)
            clash = any(me[0] < bb[2] and bb[0] < me[2] and me[1] < bb[3] and bb[1] < me[3] for bb in boxes)
            if clash and tries < 60:
                continue
            _draw_bird(cv, bx, by, s, rng)
            boxes.append(me)
            drawn += 1

    # -- plate margin and border -------------------------------------------------------
    ii = int(inset)
    size = cv.size
    cv.d.rectangle([0, 0, size - 1, ii - 1], fill=cv.paper)
    cv.d.rectangle([0, size - ii, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([0, 0, ii - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([size - ii, 0, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([ii, ii, size - 1 - ii, size - 1 - ii], outline=cv.ink, width=cv.ow)
    return cv.img


def render(index: int, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0):
    """Render item ``index``: returns ``(PIL.Image in mode "L", caption)``."""
    scene = make_scene(index, seed)
    img = draw_scene(scene, int(image_size), _draw_rng(index, seed))
    return img, caption_for(scene)


# --------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------

METADATA = "metadata.jsonl"


def _file_name(index: int, num_items: int) -> str:
    digits = max(5, len(str(max(0, num_items - 1))))
    return f"images/{index:0{digits}d}.png"


def _render_task(task):
    index, image_size, seed, out_dir, file_name = task
    img, caption = render(index, image_size, seed)
    img.save(os.path.join(out_dir, file_name), format="PNG")
    return index, caption


def generate(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    workers: Optional[int] = None,
    progress: bool = True,
) -> Path:
    """Write ``num_items`` engravings and ``metadata.jsonl`` into ``out_dir``."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    meta = out / METADATA
    if meta.exists():  # a previous set is being replaced: it is incomplete until we finish
        meta.unlink()
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    workers = max(1, min(int(workers), max(1, num_items)))
    names = [_file_name(i, num_items) for i in range(num_items)]
    tasks = [(i, int(image_size), int(seed), str(out), names[i]) for i in range(num_items)]
    captions = [None] * num_items

    from tqdm import tqdm

    if workers == 1:
        with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
            for task in tasks:
                i, cap = _render_task(task)
                captions[i] = cap
                bar.update(1)
    else:
        import multiprocessing as mp

        chunk = max(1, min(64, num_items // (workers * 8)))
        with mp.Pool(workers) as pool:  # created before tqdm starts its monitor thread
            with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
                for i, cap in pool.imap_unordered(_render_task, tasks, chunksize=chunk):
                    captions[i] = cap
                    bar.update(1)

    tmp = out / (METADATA + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for name, cap in zip(names, captions):
            f.write(json.dumps({"file_name": name, "text": cap}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta)
    return out


def ensure_sample(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
) -> Path:
    """Generate the bundled sample into ``out_dir`` unless it is already complete."""
    out = Path(out_dir)
    if (out / METADATA).exists():
        return out
    print(
        f"Generating the bundled engraving sample: {num_items} images of "
        f"{image_size}x{image_size} px into {out} ...",
        flush=True,
    )
    t0 = time.perf_counter()
    generate(out, num_items=num_items, image_size=image_size, seed=seed)
    print(f"Generated {num_items} engravings in {time.perf_counter() - t0:.1f}s.", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate the procedural engraving dataset (PNG images + metadata.jsonl captions)."
    )
    parser.add_argument("--out", required=True, help="output directory (images/ and metadata.jsonl go here)")
    parser.add_argument("--num-items", type=int, default=DEFAULT_NUM_ITEMS,
                        help=f"number of images to generate (default {DEFAULT_NUM_ITEMS})")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help=f"side length of the square images in pixels (default {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default min(cpu_count, 4); 1 = in-process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = generate(args.out, num_items=args.num_items, image_size=args.image_size, seed=args.seed,
                   workers=args.workers, progress=not args.quiet)
    print(f"Wrote {args.num_items} engravings to {out} in {time.perf_counter() - t0:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
