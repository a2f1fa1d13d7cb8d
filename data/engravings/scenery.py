"""Scenery: the sky (sun, moon, stars, clouds, rain, lightning), the backdrop (mountains, hills, mist),
the ground (sea, river, land) and birds, snow and falling leaves."""

from __future__ import annotations

import math

from .canvas import below, shade_side
from .nature import draw_mountain
from .vocabulary import ON_WATER


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
    cv.hatch(circle=(cx, cy, r * 0.8), planes=[below(cy + 0.2 * r)], angle=0, spacing=1.0)


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
        cv.hatch(circle=(x, y, r), planes=[below(y + 0.15 * r)], angle=0, spacing=0.9)


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


def _draw_land(cv, x0, x1, gy, bottom, rng, season=None):
    """Ground strokes: few on white winter snow, many tall grass tufts in summer."""
    n = max(3, int((x1 - x0) * (bottom - gy) / (cv.sp * cv.sp * 12)))
    tufts = 0.5 if season == "summer" else 0.12
    if season == "winter":
        n, tufts = max(1, n // 5), 0.0
    for _ in range(n):
        y = gy + (bottom - gy) * rng.random() ** 0.8
        depth = (y - gy) / max(1.0, bottom - gy)
        L = cv.S * (0.03 + 0.07 * depth) * rng.uniform(0.6, 1.2)
        xx = rng.uniform(x0, max(x0, x1 - L))
        cv.line([(xx, y), (xx + L, y)], width=cv.hw)
        if rng.random() < tufts:  # a tuft of grass
            tall = 2.2 if season == "summer" else 1.2
            for dx in (-1, 0, 1):
                cv.line([(xx + L * 0.5 + dx * cv.sp * 0.5, y), (xx + L * 0.5 + dx * cv.sp, y - cv.sp * tall)],
                        width=cv.hw)


def _draw_rain(cv, x0, y0, x1, y1, angle, spacing, rng):
    """Dashed parallel strokes falling at ``angle`` degrees from the horizontal."""
    th = math.radians(angle)
    dx, dy = math.cos(th), math.sin(th)
    dash = cv.sp * 1.6
    x = x0 - (y1 - y0) * dx / dy
    while x < x1:
        t = rng.uniform(0.0, dash * 2)
        while True:
            px, py = x + dx * t, y0 + dy * t
            if py > y1:
                break
            qx, qy = px + dx * dash, py + dy * dash
            if x0 <= px <= x1 and x0 <= qx <= x1 and qy <= y1:
                cv.line([(px, py), (qx, qy)], width=cv.hw)
            t += dash * rng.uniform(1.6, 2.6)
        x += cv.sp * spacing


def _draw_lightning(cv, x, y0, y1, rng):
    pts = [(x, y0)]
    n = 4
    for k in range(1, n + 1):
        pts.append((x + rng.uniform(-0.04, 0.04) * cv.S + (0.03 * cv.S if k % 2 else -0.03 * cv.S),
                    y0 + (y1 - y0) * k / n))
    cv.d.line(pts, fill=cv.paper, width=cv.ow * 3)
    cv.d.line(pts, fill=cv.ink, width=cv.ow + 1)


def _draw_mist(cv, x0, x1, y0, y1, rng):
    """Broken paper-white bands with a few dotted strokes: the distance fades."""
    y = y0
    while y < y1:
        xx = x0 + rng.uniform(0, 0.1) * cv.S
        while xx < x1:
            seg = rng.uniform(0.15, 0.4) * cv.S
            cv.d.line([(xx, y), (min(x1, xx + seg), y)], fill=cv.paper, width=max(2, int(cv.sp * 0.6)))
            if rng.random() < 0.5:
                cv.line([(xx, y + cv.sp * 0.5), (min(x1, xx + seg * 0.5), y + cv.sp * 0.5)], width=cv.hw)
            xx += seg * rng.uniform(1.2, 1.6)
        y += cv.sp * 1.4


def draw_flakes(cv, x0, y0, x1, y1, n, rng, leaves=False):
    """Snowflakes (small open rings) or falling leaves (small dark ovals) over the picture."""
    r = max(1.5, cv.sp * 0.35)
    for _ in range(n):
        x, y = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
        if leaves:
            a = rng.uniform(0, math.pi)
            c, s = math.cos(a) * r * 1.3, math.sin(a) * r * 1.3
            cv.solid([(x - c, y - s), (x - s * 0.4, y + c * 0.4), (x + c, y + s), (x + s * 0.4, y - c * 0.4)])
        else:
            cv.disk(x, y, r, width=cv.hw)


def _draw_stars(cv, x0, y0, x1, y1, rng):
    for _ in range(rng.randint(12, 20)):
        x, y = rng.uniform(x0 + 3, x1 - 3), rng.uniform(y0 + 3, y1)
        r = cv.sp * rng.uniform(0.4, 0.7)
        cv.disk(x, y, r * 0.9, outline=False)
        cv.line([(x - r, y), (x + r, y)], width=cv.hw)
        cv.line([(x, y - r), (x, y + r)], width=cv.hw)


def draw_sky(cv, scene, gy, inset, slot_w, body_x, sd, rng):
    """The sky above the horizon ``gy``: its ground and shading, the sun, moon, stars or clouds, rain and
    lightning. -> (body_y, body_r, sky_boxes): where the sun or moon stands (centred on ``body_x``) and the
    clouds' boxes, which birds keep away from."""
    S = cv.S
    if scene.technique == "mezzotint":  # worked from a dark ground
        cv.d.rectangle([inset, inset, S - inset, gy], fill=cv.tone)
    if scene.night:
        _sky_hatch(cv, inset, gy - 1, 0.95, inset, S - inset)
    elif scene.time in ("dawn", "dusk"):
        _day_sky(cv, gy - 0.3 * S, gy - 0.02 * S, inset, S - inset, rng)
    elif rng.random() < 0.5:
        top = inset + rng.uniform(0.0, 0.03) * S
        _day_sky(cv, top, top + rng.uniform(0.18, 0.32) * S, inset, S - inset, rng)
    body_r = S * rng.uniform(0.055, 0.07)
    sky_boxes = []
    body_y = S * rng.uniform(0.14, 0.16)
    if scene.sky == "sun" and scene.time in ("dawn", "dusk"):
        body_y = gy - S * rng.uniform(0.13, 0.16)  # a low sun above the horizon
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
        cv.hatch(circle=(body_x, body_y, body_r), planes=[shade_side(body_x + 0.45 * body_r, sd)],
                 angle=90, spacing=1.0)
    elif scene.sky == "stars":
        _draw_stars(cv, inset, inset, S - inset, gy - 0.25 * S, rng)
    elif scene.sky == "clouds":
        n = rng.choice((1, 2, 2, 3)) if scene.weather not in ("rain", "storm") else 3
        starts = rng.sample(range(3), n)
        for s in starts:
            cw = S * rng.uniform(0.2, 0.28)
            cx = inset + slot_w * (s + 0.5) + rng.uniform(-0.04, 0.04) * S
            cx = min(max(cx, inset + 0.6 * cw), S - inset - 0.6 * cw)
            cy = S * rng.uniform(0.14, 0.22)
            _draw_cloud(cv, cx, cy, cw, rng)
            sky_boxes.append((cx - 0.6 * cw, cy - 0.42 * cw, cx + 0.6 * cw, cy + 0.12 * cw))
    if scene.weather in ("rain", "storm"):
        storm = scene.weather == "storm"
        _draw_rain(cv, inset, S * 0.24, S - inset, gy - 1, 55 if storm else 75, 1.3 if storm else 2.4, rng)
        if storm:
            _draw_lightning(cv, rng.uniform(0.3, 0.7) * S, S * 0.22, gy - 0.12 * S, rng)
    return body_y, body_r, sky_boxes


def draw_backdrop(cv, scene, placed, gy, inset, sd, rng):
    """Behind everything on the horizon: a mountain range, hills, or one mountain behind the main object; then
    the mist in front of it."""
    S = cv.S
    if scene.backdrop == "mountains":
        _draw_range(cv, gy, rng, sd, inset)
    elif scene.backdrop == "hills":
        _draw_hills(cv, gy, rng, inset)
    elif scene.backdrop == "mountain":
        obj, x, base, w, h = placed[0]
        mw = S * rng.uniform(0.55, 0.7)
        apex_y = max(S * 0.1, min(gy - 0.28 * S, base - h - 0.08 * S))
        mx = min(max(x + rng.uniform(-0.08, 0.08) * S, inset + mw / 2), S - inset - mw / 2)
        draw_mountain(cv, mx, gy, mw, gy - apex_y, rng, sd, light_outline=True)
    if scene.weather == "mist":
        _draw_mist(cv, inset, S - inset, gy - 0.2 * S, gy - 1, rng)


def draw_ground(cv, scene, placed, gy, inset, slot_w, rng):
    """The horizon line and, slot by slot below it, sea under boats, a river under a bridge, land elsewhere."""
    S = cv.S
    bottom = S - inset
    cv.line([(inset, gy), (S - inset, gy)], width=cv.hw)
    kinds_at = {obj.slot: obj.kind for obj, *_ in placed}
    for s in range(3):
        x0, x1 = inset + s * slot_w, inset + (s + 1) * slot_w
        kind = kinds_at.get(s)
        if kind in ON_WATER:
            _draw_sea(cv, x0, x1, gy, bottom, rng)
        elif kind == "bridge":
            _draw_river(cv, x0, x1, gy, bottom, rng)
        else:
            _draw_land(cv, x0, x1, gy, bottom, rng, scene.season)


def draw_flock(cv, n, keep_clear, gy, inset, rng):
    """``n`` birds in the upper sky, each placed clear of the boxes in ``keep_clear`` (objects, clouds, the sun
    or moon) and of the birds before it; after 60 tries in all, the rest go where they fall, so that every
    bird the caption counts is drawn."""
    S = cv.S
    boxes = list(keep_clear)
    drawn = 0
    tries = 0
    s_base = S * rng.uniform(0.028, 0.038)
    while drawn < n:
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
