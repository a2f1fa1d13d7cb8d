"""Drawing primitives: half-planes and the canvas with its strokes, shapes and hatching."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from .vocabulary import TECHNIQUE_LINES


def halfplanes(poly):
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


def shade_side(x0, sd):
    """Points on the shaded side (sign ``sd``) of the vertical line x = x0."""
    return (-sd, 0.0, -sd * x0)


def below(y0):
    """Points with y >= y0 (lower in the image)."""
    return (0.0, -1.0, -y0)


def above(y0):
    """Points with y <= y0 (higher in the image)."""
    return (0.0, 1.0, y0)


class Canvas:
    def __init__(self, size: int, rng: random.Random, technique: str = "engraving"):
        self.size = size
        self.S = float(size)
        self.rng = rng
        self.paper = rng.randint(236, 249)
        self.ink = rng.randint(70, 100) if technique == "lithograph" else rng.randint(10, 45)
        self.img = Image.new("L", (size, size), self.paper)
        self.d = ImageDraw.Draw(self.img)
        line, spacing = TECHNIQUE_LINES[technique]
        self.ow = max(1, round(size / 80 * line))  # outline width
        self.hw = max(1, round(size / 128 * line))  # hatch width
        self.sp = max(2.0, size / 42 * spacing)  # hatch spacing
        # aquatint / mezzotint: hatching becomes a flat grey tone, light or dark
        depth = {"aquatint": 0.35, "mezzotint": 0.6}.get(technique)
        self.tone = None if depth is None else round(self.paper - depth * (self.paper - self.ink))

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
            hp += halfplanes(poly)
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
        ink = self.ink
        if self.tone is not None:  # strokes as wide as their spacing merge into a tone
            ink, w, cross, trim = self.tone, int(sp) + 2, False, 0
        rng = self.rng
        draw_line = self.d.line
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

