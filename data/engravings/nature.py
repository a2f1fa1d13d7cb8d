"""Objects that are not buildings: ships and boats, trees, rocks, haystacks, mountains, figures and
statues.

Each drawer gets the slot center x, the base line b, the width w and height h in pixels, the RNG
and the shaded side sd (+1 = right).
"""

from __future__ import annotations

import math

from .canvas import below, shade_side
from .scene import PlacedObject


def _draw_ship(cv, x, b, w, h, rng, sd, obj):
    m = rng.choice((-1, 1))  # bow direction

    def P(u, v):
        return (x + m * u * w, b - v * h)

    hull = [P(-0.5, 0.27), P(0.5, 0.22), P(0.36, -0.03), P(-0.4, -0.03)]
    n_masts = obj.detail or rng.choice((1, 2, 3))
    mast_us = {1: [0.0], 2: [-0.2, 0.16], 3: [-0.28, -0.02, 0.24]}[n_masts]
    half = {1: 0.24, 2: 0.16, 3: 0.12}[n_masts]
    tops = []
    for i, u in enumerate(mast_us):
        top = 1.0 if (i == len(mast_us) // 2) else rng.uniform(0.8, 0.9)
        tops.append((u, top))
        deck = 0.25
        cv.line([P(u, deck), P(u, top)], width=cv.ow)
        if obj.state == "anchored":  # sails furled on bare yards
            for v in (0.5, top - 0.15):
                cv.line([P(u - half, v), P(u + half, v)], width=cv.ow)
                cv.line([P(u - half * 0.8, v - 0.02), P(u + half * 0.8, v - 0.02)], width=cv.ow + 1)
            cv.line([P(u, top), P(u - 0.09, top - 0.035), P(u, top - 0.07)], width=cv.hw)
            continue
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
            cv.hatch(poly=pts, planes=[shade_side(mx, sd)], angle=90, spacing=1.25)
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
    for _ in range(3):
        wx = x + rng.uniform(-0.45, 0.3) * w
        ww = rng.uniform(0.12, 0.2) * w
        cv.d.arc([wx, b - 0.02 * h, wx + ww, b + 0.05 * h + 2], 200, 340, fill=cv.ink, width=cv.hw)


def _draw_tree(cv, x, b, w, h, rng, sd, obj):
    tw = 0.09 * w
    lean = rng.uniform(-0.04, 0.04) * w
    trunk = [(x - tw, b), (x + tw, b), (x + 0.6 * tw + lean, b - 0.5 * h), (x - 0.6 * tw + lean, b - 0.5 * h)]
    cv.shape(trunk)
    cv.hatch(poly=trunk, planes=[shade_side(x, sd)], angle=90, spacing=0.7, trim=0)
    # roots
    cv.line([(x - tw, b), (x - 2.2 * tw, b + 0.01 * h)], width=cv.hw)
    cv.line([(x + tw, b), (x + 2.2 * tw, b + 0.01 * h)], width=cv.hw)
    if obj.state == "bare":
        _bare_branches(cv, x + lean, b - 0.5 * h, 0.5 * h, -90.0, 4, rng)
        return
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


def _draw_pine(cv, x, b, w, h, rng, sd, obj):
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
        cv.hatch(poly=tri, planes=[shade_side(x, sd)], angle=90 - sd * 30, spacing=0.75)
        cv.hatch(poly=tri, planes=[below(yb - 0.25 * th * h)], angle=0, spacing=1.4)


def draw_mountain(cv, x, b, w, h, rng, sd, obj=None, light_outline=False):
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
    cv.hatch(poly=face, planes=[below(snow)], angle=ang, spacing=0.75 if not light_outline else 1.1)
    # ridge line and some strokes on the lit face near the foot
    mid = ((apex[0] + foot[0]) / 2 + rng.uniform(-0.04, 0.04) * w, (apex[1] + foot[1]) / 2)
    cv.line([apex, mid, foot], width=cv.hw)
    lit_corner = left if sd > 0 else right
    lit = [apex, foot, lit_corner]
    cv.hatch(poly=lit, planes=[below(b - 0.35 * h)], angle=90 + sd * 30, spacing=1.7)


def _draw_figure(cv, x, b, w, h, rng, sd, obj):
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
    cv.hatch(poly=coat, planes=[shade_side(x, sd)], angle=90 + sd * 30, spacing=0.8)
    # arms
    hand = (x + m * 0.2 * h, b - 0.5 * h)
    cv.line([(x + m * sw, ys + 0.02 * h), hand], width=cv.ow)
    cv.line([(x - m * sw, ys + 0.02 * h), (x - m * 0.16 * h, b - 0.48 * h)], width=cv.ow)
    if obj.detail == "staff":  # walking staff
        cv.line([(x + m * 0.24 * h, b), (x + m * 0.18 * h, b - 0.78 * h)], width=cv.ow)
    cv.disk(x, hy, r)
    if obj.detail == "hat":
        brim = hy - 0.4 * r
        cv.line([(x - 1.8 * r, brim), (x + 1.8 * r, brim)], width=cv.ow)
        crown = [(x - r, brim), (x + r, brim), (x + 0.8 * r, brim - 1.2 * r), (x - 0.8 * r, brim - 1.2 * r)]
        cv.solid(crown)


def _bare_branches(cv, x, y, length, angle, depth, rng):
    """A leafless crown: each branch forks in two, thinner and shorter."""
    a = math.radians(angle)
    x1, y1 = x + length * math.cos(a), y + length * math.sin(a)
    cv.line([(x, y), (x1, y1)], width=max(cv.hw, round(cv.ow * depth / 3)))
    if depth > 1:
        for turn in (-1, 1):
            _bare_branches(cv, x1, y1, length * rng.uniform(0.55, 0.7), angle + turn * rng.uniform(20, 40),
                           depth - 1, rng)


def _draw_boat(cv, x, b, w, h, rng, sd, obj):
    m = rng.choice((-1, 1))
    hull = [(x - 0.5 * w, b - 0.45 * h), (x + 0.5 * w, b - 0.5 * h), (x + (0.3 + 0.05 * m) * w, b),
            (x - (0.3 - 0.05 * m) * w, b)]
    cv.shape(hull)
    cv.hatch(poly=hull, angle=0, spacing=0.7)
    cv.disk(x, b - 0.85 * h, 0.12 * h)  # the rower
    cv.shape([(x - 0.1 * h, b - 0.72 * h), (x + 0.1 * h, b - 0.72 * h), (x + 0.14 * h, b - 0.45 * h),
              (x - 0.14 * h, b - 0.45 * h)])
    for s in (-1, 1):
        cv.line([(x, b - 0.6 * h), (x + s * 0.45 * w, b + 0.15 * h)], width=cv.hw)


def _draw_cypress(cv, x, b, w, h, rng, sd, obj):
    pts = []
    for i in range(13):
        t = i / 12
        half = 0.5 * w * math.sin(math.pi * min(1.0, 0.15 + 0.95 * t)) ** 0.6
        pts.append((x - half, b - 0.05 * h - t * 0.95 * h))
    pts = pts[::-1][:-1] + [(x, b - h)] + [(2 * x - px, py) for px, py in pts[1:]]
    cv.shape([(x - 0.06 * w, b), (x + 0.06 * w, b), (x + 0.06 * w, b - 0.08 * h), (x - 0.06 * w, b - 0.08 * h)])
    cv.shape(pts)
    cv.hatch(poly=pts[len(pts) // 2:] if sd > 0 else pts[: len(pts) // 2 + 1], angle=80, spacing=0.8)


def _draw_palm(cv, x, b, w, h, rng, sd, obj):
    lean = rng.choice((-1, 1)) * 0.15 * w
    trunk = [(x + lean * (t / 6) ** 2, b - 0.75 * h * t / 6) for t in range(7)]
    for (x0, y0), (x1, y1) in zip(trunk, trunk[1:]):
        cv.shape([(x0 - 0.05 * w, y0), (x0 + 0.05 * w, y0), (x1 + 0.04 * w, y1), (x1 - 0.04 * w, y1)], width=cv.hw)
    tx, ty = trunk[-1]
    for k in range(7):
        a = math.pi * (0.05 + 0.9 * k / 6)
        frond = [(tx + 0.5 * w * math.cos(a) * t, ty - 0.25 * h * math.sin(a) * t + 0.3 * h * t * t) for t in
                 (0.0, 0.35, 0.7, 1.0)]
        cv.line(frond, width=cv.ow)
        for (fx, fy) in frond[1:]:
            cv.line([(fx, fy), (fx, fy + 0.06 * h)], width=cv.hw)


def _draw_bush(cv, x, b, w, h, rng, sd, obj):
    circles = [(x + (k - 1.5) * 0.22 * w, b - rng.uniform(0.35, 0.5) * h, rng.uniform(0.22, 0.3) * w)
               for k in range(4)]
    circles = [(cx, min(cy, b - r), r) for cx, cy, r in circles]
    for cx, cy, r in circles:
        cv.disk(cx, cy, r + cv.ow, fill=cv.ink, outline=False)
    for cx, cy, r in circles:
        cv.disk(cx, cy, r, outline=False)
    for cx, cy, r in circles:
        cv.hatch(circle=(cx, cy, r), planes=[below(cy)], angle=45 if sd > 0 else 135, spacing=0.9)


def _draw_rock(cv, x, b, w, h, rng, sd, obj):
    pts = [(x - 0.5 * w, b)]
    for k in range(1, 6):
        a = math.pi - math.pi * k / 6
        r = rng.uniform(0.8, 1.0)
        pts.append((x + 0.5 * w * r * math.cos(a), b - h * r * math.sin(a) ** 0.7))
    pts.append((x + 0.5 * w, b))
    cv.shape(pts)
    cv.hatch(poly=pts, planes=[shade_side(x, sd)], angle=90 - sd * 30, spacing=0.7)
    cv.line([(x - 0.1 * w, b - 0.7 * h), (x, b - 0.4 * h), (x - 0.05 * w, b - 0.1 * h)], width=cv.hw)


def _draw_statue(cv, x, b, w, h, rng, sd, obj):
    plinth = [(x - 0.45 * w, b), (x + 0.45 * w, b), (x + 0.45 * w, b - 0.3 * h), (x - 0.45 * w, b - 0.3 * h)]
    cv.shape(plinth)
    cv.hatch(poly=plinth, planes=[shade_side(x, sd)], angle=90, spacing=0.8)
    cv.line([(x - 0.5 * w, b - 0.3 * h), (x + 0.5 * w, b - 0.3 * h)], width=cv.ow)
    _draw_figure(cv, x, b - 0.3 * h, w, 0.7 * h, rng, sd, PlacedObject("figure", "small", "center", detail="staff"))


def _draw_haystack(cv, x, b, w, h, rng, sd, obj):
    pts = [(x + 0.5 * w * math.cos(math.pi * k / 12), b - 0.9 * h * math.sin(math.pi * k / 12) ** 0.8)
           for k in range(13)]
    cv.shape(pts)
    cv.hatch(poly=pts, angle=80, spacing=0.8)
    cv.hatch(poly=pts, planes=[shade_side(x, sd)], angle=100, spacing=0.8)
    cv.line([(x, b - 0.85 * h), (x, b - h)], width=cv.ow)


DRAWERS = {
    "ship": _draw_ship,
    "tree": _draw_tree,
    "pine": _draw_pine,
    "mountain": draw_mountain,
    "figure": _draw_figure,
    "boat": _draw_boat,
    "cypress": _draw_cypress,
    "palm": _draw_palm,
    "bush": _draw_bush,
    "rock": _draw_rock,
    "statue": _draw_statue,
    "haystack": _draw_haystack,
}
