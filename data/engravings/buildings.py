"""Buildings and monuments: houses, churches, castles, towers, bridges, obelisks, tents, wells, ...,
and the ruin drawn over any of them.

Each drawer gets the slot center x, the base line b, the width w and height h in pixels, the RNG
and the shaded side sd (+1 = right).
"""

from __future__ import annotations

import math

from .canvas import above, below, halfplanes, shade_side


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


def _draw_house(cv, x, b, w, h, rng, sd, obj):
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
    if obj.material is not None:
        _material(cv, wall, obj.material)
    else:
        cv.hatch(poly=wall, planes=[shade_side(x, sd)], angle=90, spacing=1.2)
    hipped = obj.detail == "hipped" if obj.detail else rng.random() < 0.35
    if hipped:
        roof = [P(-0.5, eave - 0.02), P(0.5, eave - 0.02), P(0.22, 0.93), P(-0.22, 0.93)]
    else:
        roof = [P(-0.5, eave - 0.02), P(0.5, eave - 0.02), P(0.0, 1.0)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.8)
    cv.hatch(poly=roof, planes=[shade_side(x, sd)], angle=sd * 35, spacing=0.8)
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


def _draw_windmill(cv, x, b, w, h, rng, sd, obj):
    tower = [(x - 0.24 * w, b), (x + 0.24 * w, b), (x + 0.14 * w, b - 0.6 * h), (x - 0.14 * w, b - 0.6 * h)]
    cv.shape(tower)
    if obj.material is not None:
        _material(cv, tower, obj.material)
    else:
        cv.hatch(poly=tower, planes=[shade_side(x + sd * 0.02 * w, sd)], angle=90, spacing=0.75)
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


def _draw_church(cv, x, b, w, h, rng, sd, obj):
    m = rng.choice((-1, 1))

    def X(u):
        return x + m * u * w

    def Y(v):
        return b - v * h

    def P(u, v):
        return (X(u), Y(v))

    nave = [P(-0.48, 0), P(0.12, 0), P(0.12, 0.34), P(-0.48, 0.34)]
    cv.shape(nave)
    _material(cv, nave, obj.material or "plain")
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
    cv.hatch(poly=tower, planes=[shade_side(tx, sd)], angle=90, spacing=0.75)
    x0, x1 = sorted((X(0.21), X(0.31)))
    _dark_opening(cv, _arch_points(x0, x1, b, 0.2 * h, n=6))
    x0, x1 = sorted((X(0.2), X(0.32)))
    _dark_opening(cv, _arch_points(x0, x1, Y(0.45), 0.12 * h, n=6))
    spire = [P(0.07, 0.62), P(0.45, 0.62), P(0.26, rng.uniform(0.9, 0.94))]
    cv.shape(spire)
    cv.hatch(poly=spire, angle=90, spacing=0.9)
    cv.hatch(poly=spire, planes=[shade_side(tx, sd)], angle=90 - sd * 35, spacing=0.8)
    top = spire[2][1]
    cv.line([(tx, top), (tx, Y(1.0))], width=cv.ow)
    cv.line([(tx - 0.05 * w, Y(0.975)), (tx + 0.05 * w, Y(0.975))], width=cv.ow)


def _draw_bridge(cv, x, b, w, h, rng, sd, obj):
    """A stone bridge on round arches over water, reflected below, with ramps to the banks."""
    hump = rng.uniform(0.05, 0.2)
    half = 0.4

    def top(u):  # deck height (fraction of h), u in [-half, half]
        return 1.0 - hump * (u / half) ** 2

    if obj.material == "wooden":
        _draw_trestle(cv, x, b, w, h, rng)
        return
    n_arch = obj.detail or rng.choice((2, 3))
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
        cv.hatch(poly=pts, planes=[shade_side((x0 + x1) / 2, -sd)], angle=90, spacing=0.9, trim=0)
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
    if obj.material == "brick":
        _material(cv, band, "brick")
    cv.line([(x - 0.5 * w, b), (x + 0.5 * w, b)], width=cv.hw)


def _draw_castle(cv, x, b, w, h, rng, sd, obj):
    mh = max(1.5, 0.06 * h)
    keep = _crenellated(x - 0.17 * w, x + 0.17 * w, b - 0.8 * h, mh, 4, b)
    cv.shape(keep)
    cv.hatch(poly=[(x - 0.17 * w, b), (x + 0.17 * w, b), (x + 0.17 * w, b - 0.8 * h), (x - 0.17 * w, b - 0.8 * h)],
             planes=[shade_side(x, sd)], angle=90, spacing=0.8)
    cv.d.rectangle([x - 0.02 * w, b - 0.68 * h, x + 0.02 * w, b - 0.58 * h], fill=cv.ink)
    wall = _crenellated(x - 0.36 * w, x + 0.36 * w, b - 0.48 * h, mh, 7, b)
    cv.shape(wall)
    wall_box = [(x - 0.36 * w, b), (x + 0.36 * w, b), (x + 0.36 * w, b - 0.48 * h), (x - 0.36 * w, b - 0.48 * h)]
    cv.hatch(poly=wall_box, angle=0, spacing=1.6)
    _dark_opening(cv, _arch_points(x - 0.08 * w, x + 0.08 * w, b, 0.26 * h))
    roofs = obj.detail == "turreted" if obj.detail else rng.random() < 0.4
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
            cv.hatch(poly=box, planes=[shade_side((x0 + x1) / 2, sd)], angle=90, spacing=1.0)
        cx = (x0 + x1) / 2
        for v in (0.35, 0.6):
            cv.line([(cx, b - v * h), (cx, b - (v + 0.08) * h)], width=max(cv.ow, 1), fill=cv.ink)


def _draw_tower(cv, x, b, w, h, rng, sd, obj):
    top_v = 0.74
    body = [(x - 0.42 * w, b), (x + 0.42 * w, b), (x + 0.36 * w, b - top_v * h), (x - 0.36 * w, b - top_v * h)]
    cv.shape(body)
    if obj.material is not None:
        _material(cv, body, obj.material)
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
    battlemented = obj.detail == "battlemented" if obj.detail else rng.random() < 0.5
    if battlemented:
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
        cv.hatch(poly=cone, planes=[shade_side(x, sd)], angle=90 - sd * 30, spacing=0.85)


def _draw_lighthouse(cv, x, b, w, h, rng, sd, obj):
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
    if obj.material is not None:
        _material(cv, tower, obj.material)
    else:
        cv.hatch(poly=tower, planes=[shade_side(x + sd * 0.1 * w, sd)], angle=90, spacing=1.0)
    n_bands = obj.detail or rng.choice((2, 3))
    for k in range(n_bands):
        v0 = base_v + (top_v - base_v) * (k + 0.5) / (n_bands + 0.5)
        v1 = v0 + (top_v - base_v) * 0.45 / (n_bands + 0.5)
        cv.hatch(poly=tower, planes=[below(b - v1 * h), above(b - v0 * h)], angle=0, spacing=0.55, trim=0)
        cv.hatch(poly=tower, planes=[below(b - v1 * h), above(b - v0 * h)], angle=90, spacing=0.7, trim=0)
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


def _span(planes, y):
    """The x interval of the horizontal line at ``y`` inside the half-planes, or None."""
    lo, hi = -1e9, 1e9
    for a, b, c in planes:
        rest = c - b * y
        if abs(a) < 1e-9:
            if rest < 0:
                return None
        elif a > 0:
            hi = min(hi, rest / a)
        else:
            lo = max(lo, rest / a)
    return (lo, hi) if hi - lo > 1.0 else None


def _material(cv, poly, material):
    """Wall texture: stone blocks, small bricks, vertical planks, or plain horizontal hatching."""
    if material == "wooden":
        cv.hatch(poly=poly, angle=90, spacing=0.9, trim=0)
        return
    if material == "plain":
        cv.hatch(poly=poly, angle=0, spacing=1.8)
        return
    planes = halfplanes(poly)
    ys = [p[1] for p in poly]
    row = cv.sp * (1.5 if material == "stone" else 0.75)
    joint = row * (1.8 if material == "stone" else 2.4)
    y, k = min(ys) + row, 0
    while y < max(ys) - 0.5:
        span = _span(planes, y)
        above = _span(planes, y - row)
        if span:
            cv.line([(span[0], y), (span[1], y)], width=cv.hw)
        if span and above:
            lo, hi = max(span[0], above[0]), min(span[1], above[1])
            xx = lo + (0.25 + 0.5 * (k % 2)) * joint
            while xx < hi - 1:
                cv.line([(xx, y - row), (xx, y)], width=cv.hw)
                xx += joint
        y += row
        k += 1


def ruin(cv, x, b, w, h, rng):
    """Bite a jagged gap out of one upper corner of an object and leave rubble at its foot."""
    s = rng.choice((-1, 1))
    top = b - h - 2
    jag = [(x + s * 0.55 * w, b - rng.uniform(0.4, 0.5) * h)]
    for k in range(1, 5):
        u = 0.55 - 0.17 * k
        v = rng.uniform(0.5, 0.62) + 0.08 * k + (0.06 if k % 2 else -0.06)
        jag.append((x + s * u * w, b - v * h))
    jag.append((x - s * 0.18 * w, top))
    cv.d.polygon([(float(px), float(py)) for px, py in [(x + s * 0.55 * w, top)] + jag], fill=cv.paper)
    cv.line(jag[1:-1], width=cv.ow)
    for _ in range(rng.randint(3, 5)):  # fallen blocks
        bx = x + s * rng.uniform(0.2, 0.6) * w
        r = rng.uniform(0.03, 0.05) * h + 1
        cv.shape([(bx - r, b + r * 0.6), (bx + r, b + r * 0.6), (bx + 0.7 * r, b - r), (bx - 0.8 * r, b - 0.8 * r)])


def _draw_trestle(cv, x, b, w, h, rng):
    """A wooden footbridge: a plank deck with a rail on posts and cross-braces."""
    h = min(h, 0.45 * w)
    deck = b - 0.55 * h
    cv.shape([(x - 0.5 * w, deck), (x + 0.5 * w, deck), (x + 0.5 * w, deck + 0.08 * h), (x - 0.5 * w, deck + 0.08 * h)])
    cv.line([(x - 0.5 * w, deck - 0.35 * h), (x + 0.5 * w, deck - 0.35 * h)], width=cv.ow)
    n = 4
    for k in range(n + 1):
        px = x - 0.45 * w + 0.9 * w * k / n
        cv.line([(px, deck - 0.35 * h), (px, deck)], width=cv.hw)
        cv.line([(px, deck), (px, b + 0.1 * h)], width=cv.ow)
        if k < n:
            nx = px + 0.9 * w / n
            cv.line([(px, deck + 0.1 * h), (nx, b)], width=cv.hw)
            cv.line([(px, b), (nx, deck + 0.1 * h)], width=cv.hw)


def _draw_hut(cv, x, b, w, h, rng, sd, obj):
    wall = [(x - 0.4 * w, b), (x + 0.4 * w, b), (x + 0.4 * w, b - 0.45 * h), (x - 0.4 * w, b - 0.45 * h)]
    cv.shape(wall)
    _material(cv, wall, obj.material or "plain")
    roof = [(x - 0.52 * w, b - 0.43 * h), (x + 0.52 * w, b - 0.43 * h), (x, b - h)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.6)
    _dark_opening(cv, [(x - 0.1 * w, b), (x + 0.1 * w, b), (x + 0.1 * w, b - 0.3 * h), (x - 0.1 * w, b - 0.3 * h)])


def _draw_obelisk(cv, x, b, w, h, rng, sd, obj):
    step = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.5 * w, b - 0.06 * h), (x - 0.5 * w, b - 0.06 * h)]
    cv.shape(step)
    shaft = [(x - 0.32 * w, b - 0.06 * h), (x + 0.32 * w, b - 0.06 * h), (x + 0.2 * w, b - 0.88 * h),
             (x - 0.2 * w, b - 0.88 * h)]
    cv.shape(shaft)
    cv.hatch(poly=shaft, planes=[shade_side(x, sd)], angle=90, spacing=0.7)
    tip = [(x - 0.2 * w, b - 0.88 * h), (x + 0.2 * w, b - 0.88 * h), (x, b - h)]
    cv.shape(tip)
    cv.hatch(poly=tip, angle=90, spacing=0.7)


def _draw_pyramid(cv, x, b, w, h, rng, sd, obj):
    apex = (x + rng.uniform(-0.05, 0.05) * w, b - h)
    tri = [(x - 0.5 * w, b), (x + 0.5 * w, b), apex]
    cv.shape(tri)
    face = [apex, (x + sd * 0.5 * w, b), (apex[0] + sd * 0.1 * w, b)]
    cv.hatch(poly=face, angle=90 - sd * 20, spacing=0.7)
    for k in range(1, 6):  # courses of stone
        y = b - h * k / 6
        span = _span(halfplanes(tri), y)
        if span:
            cv.line([(span[0], y), (span[1], y)], width=cv.hw)


def _draw_column(cv, x, b, w, h, rng, sd, obj):
    base = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.5 * w, b - 0.07 * h), (x - 0.5 * w, b - 0.07 * h)]
    cv.shape(base)
    shaft = [(x - 0.33 * w, b - 0.07 * h), (x + 0.33 * w, b - 0.07 * h), (x + 0.3 * w, b - 0.88 * h),
             (x - 0.3 * w, b - 0.88 * h)]
    cv.shape(shaft)
    for u in (-0.15, 0.0, 0.15):  # flutes
        cv.line([(x + u * w, b - 0.09 * h), (x + u * w, b - 0.86 * h)], width=cv.hw)
    cv.hatch(poly=shaft, planes=[shade_side(x + sd * 0.18 * w, sd)], angle=90, spacing=0.6, trim=0)
    cap = [(x - 0.5 * w, b - 0.88 * h), (x + 0.5 * w, b - 0.88 * h), (x + 0.5 * w, b - h), (x - 0.5 * w, b - h)]
    cv.shape(cap)
    cv.hatch(poly=cap, angle=0, spacing=0.8, trim=0)


def _draw_gateway(cv, x, b, w, h, rng, sd, obj):
    block = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.5 * w, b - 0.88 * h), (x - 0.5 * w, b - 0.88 * h)]
    cv.shape(block)
    _material(cv, block, obj.material or "plain")
    cornice = [(x - 0.56 * w, b - 0.88 * h), (x + 0.56 * w, b - 0.88 * h), (x + 0.56 * w, b - h),
               (x - 0.56 * w, b - h)]
    cv.shape(cornice)
    cv.hatch(poly=cornice, angle=90, spacing=0.7, trim=0)
    _dark_opening(cv, _arch_points(x - 0.22 * w, x + 0.22 * w, b, 0.62 * h))


def _draw_tent(cv, x, b, w, h, rng, sd, obj):
    body = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x, b - 0.9 * h)]
    cv.shape(body)
    cv.hatch(poly=body, planes=[shade_side(x, sd)], angle=90 - sd * 25, spacing=0.8)
    _dark_opening(cv, [(x - 0.12 * w, b), (x + 0.12 * w, b), (x, b - 0.5 * h)])
    cv.line([(x, b - 0.9 * h), (x, b - h)], width=cv.ow)
    for s in (-1, 1):  # guy ropes
        cv.line([(x + s * 0.25 * w, b - 0.45 * h), (x + s * 0.62 * w, b)], width=cv.hw)


def _draw_cross(cv, x, b, w, h, rng, sd, obj):
    step = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.4 * w, b - 0.12 * h), (x - 0.4 * w, b - 0.12 * h)]
    cv.shape(step)
    cv.hatch(poly=step, angle=0, spacing=0.8)
    post = [(x - 0.1 * w, b - 0.12 * h), (x + 0.1 * w, b - 0.12 * h), (x + 0.1 * w, b - h), (x - 0.1 * w, b - h)]
    arm = [(x - 0.42 * w, b - 0.68 * h), (x + 0.42 * w, b - 0.68 * h), (x + 0.42 * w, b - 0.78 * h),
           (x - 0.42 * w, b - 0.78 * h)]
    cv.shape(post)
    cv.shape(arm)
    cv.solid([(x + sd * 0.02 * w, b - 0.12 * h), (x + sd * 0.1 * w, b - 0.12 * h), (x + sd * 0.1 * w, b - h),
              (x + sd * 0.02 * w, b - h)])


def _draw_well(cv, x, b, w, h, rng, sd, obj):
    wall = [(x - 0.45 * w, b), (x + 0.45 * w, b), (x + 0.45 * w, b - 0.4 * h), (x - 0.45 * w, b - 0.4 * h)]
    cv.shape(wall)
    _material(cv, wall, obj.material or "stone")
    for s in (-1, 1):
        cv.line([(x + s * 0.38 * w, b - 0.4 * h), (x + s * 0.38 * w, b - 0.8 * h)], width=cv.ow)
    roof = [(x - 0.55 * w, b - 0.78 * h), (x + 0.55 * w, b - 0.78 * h), (x, b - h)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.7)
    cv.line([(x - 0.38 * w, b - 0.65 * h), (x + 0.38 * w, b - 0.65 * h)], width=cv.hw)
    cv.line([(x, b - 0.65 * h), (x, b - 0.5 * h)], width=cv.hw)
    cv.shape([(x - 0.07 * w, b - 0.5 * h), (x + 0.07 * w, b - 0.5 * h), (x + 0.06 * w, b - 0.43 * h),
              (x - 0.06 * w, b - 0.43 * h)])


def _draw_signpost(cv, x, b, w, h, rng, sd, obj):
    cv.shape([(x - 0.05 * w, b), (x + 0.05 * w, b), (x + 0.05 * w, b - h), (x - 0.05 * w, b - h)])
    for s, y in ((-1, 0.8), (1, 0.62)):
        arm = [(x, b - y * h), (x + s * 0.4 * w, b - y * h), (x + s * 0.5 * w, b - (y - 0.06) * h),
               (x + s * 0.4 * w, b - (y - 0.12) * h), (x, b - (y - 0.12) * h)]
        cv.shape(arm)
        cv.hatch(poly=arm, angle=0, spacing=0.6, trim=0)


def _draw_tombstone(cv, x, b, w, h, rng, sd, obj):
    stone = _arch_points(x - 0.4 * w, x + 0.4 * w, b, h, n=10)
    cv.shape(stone)
    cv.hatch(poly=stone, planes=[shade_side(x + sd * 0.25 * w, sd)], angle=90, spacing=0.7)
    for k in range(3):  # the inscription
        y = b - (0.35 + 0.13 * k) * h
        cv.line([(x - 0.22 * w, y), (x + 0.18 * w, y)], width=cv.hw)


def _draw_pagoda(cv, x, b, w, h, rng, sd, obj):
    y = b
    for k in range(3):
        bw, th = 0.36 * w * (1 - 0.2 * k), 0.22 * h
        body = [(x - bw, y), (x + bw, y), (x + bw, y - th * 0.6), (x - bw, y - th * 0.6)]
        cv.shape(body)
        cv.hatch(poly=body, planes=[shade_side(x, sd)], angle=90, spacing=0.7)
        rw = bw + 0.14 * w
        roof = [(x - rw, y - th * 0.5), (x + rw, y - th * 0.5), (x + bw * 0.7, y - th), (x - bw * 0.7, y - th)]
        cv.shape(roof)
        cv.hatch(poly=roof, angle=90, spacing=0.7)
        y -= th
    cv.line([(x, y), (x, b - h)], width=cv.ow)


DRAWERS = {
    "house": _draw_house,
    "windmill": _draw_windmill,
    "church": _draw_church,
    "bridge": _draw_bridge,
    "castle": _draw_castle,
    "tower": _draw_tower,
    "lighthouse": _draw_lighthouse,
    "hut": _draw_hut,
    "obelisk": _draw_obelisk,
    "pyramid": _draw_pyramid,
    "column": _draw_column,
    "gateway": _draw_gateway,
    "tent": _draw_tent,
    "cross": _draw_cross,
    "well": _draw_well,
    "signpost": _draw_signpost,
    "tombstone": _draw_tombstone,
    "pagoda": _draw_pagoda,
}
