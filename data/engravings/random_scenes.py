"""Random scenes: item ``index`` of the set with ``seed`` always gets the same scene."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from .captions import MAX_CAPTION_TOKENS, caption_for, caption_tokens
from .scene import PlacedObject, Scene
from .vocabulary import ASPECT, DETAILS, KINDS, MATERIALS, POSITIONS, SEASONS, STATES, TECHNIQUES, TIMES


def _scene_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"engraving-{seed}-{index}")


def _max_count(kind: str, size: str) -> int:
    """How many objects of this kind fit side by side in a slot (overlapping by a tenth).

    A group may shrink by a quarter to fit; a pair of small objects by more than half.
    """
    slot = 0.95 * 0.94 / 3
    height = 0.47 if size == "large" else 0.205
    fits = {n: ASPECT[kind] * (1 + 0.92 * (n - 1)) * height * shrink <= slot
            for n, shrink in ((2, 0.75 if size == "large" else 0.45), (3, 0.75))}
    return 3 if fits[3] else 2 if fits[2] else 1


def _random_object(rng: random.Random, position: str, season: str | None, size: str) -> PlacedObject:
    kind = rng.choice(KINDS)
    count = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
    count = min(count, _max_count(kind, size))
    material = rng.choice((None,) + MATERIALS[kind]) if kind in MATERIALS else None
    state = rng.choice((None, None) + STATES[kind]) if kind in STATES else None
    if kind == "tree" and season == "winter":
        state = "bare"
    detail = rng.choice(DETAILS[kind]) if kind in DETAILS else None
    if kind == "bridge" and material == "wooden":
        detail = None
    return PlacedObject(kind, size, position, count, material, state, detail)


def _sky_slot(objects: Sequence[PlacedObject], time_of_day: str, rng: random.Random) -> int:
    """The sun or moon stands over the emptiest slot; a low sun left at dawn, right at dusk."""
    if time_of_day == "dawn":
        return 0
    if time_of_day == "dusk":
        return 2
    height = [0, 0, 0]
    for o in objects:
        height[o.slot] = 2 if o.size == "large" else 1
    return min(range(3), key=lambda s: (height[s], rng.random()))


def _random_weather(rng: random.Random, time_of_day: str, season: str | None) -> str | None:
    choices = [None] * 6 + ["mist"]
    if time_of_day == "day" and season != "winter":
        choices += ["rain", "storm"]
    if season == "winter":
        choices += ["snow", "snow"]
    return rng.choice(choices)


def _random_sky(rng: random.Random, time_of_day: str, weather: str | None) -> str | None:
    if time_of_day == "night":
        return rng.choice(("crescent moon", "full moon", "stars"))
    if time_of_day in ("dawn", "dusk"):
        return "sun"
    if weather in ("rain", "storm"):
        return "clouds"
    return rng.choice((None, "sun", "clouds"))


def _shorten(scene: Scene, rng: random.Random) -> Scene:
    """Drop one piece of scenery (it is then not drawn either)."""
    droppable = {
        "backdrop": scene.backdrop is not None,
        "birds": scene.birds > 0,
        "weather": scene.weather is not None,
        "season": scene.season is not None and scene.weather != "snow",
    }
    present = [name for name, on in droppable.items() if on]
    if not present:
        return scene
    drop = rng.choice(present)
    return dataclasses.replace(scene, **{drop: 0 if drop == "birds" else None})


def make_scene(index: int, seed: int = 0) -> Scene:
    """The scene of item ``index`` (independent of the image size; nothing is drawn)."""
    rng = _scene_rng(index, seed)
    n = rng.choices((1, 2, 3), weights=(40, 45, 15))[0]
    slots = sorted(rng.sample(range(3), n))
    main = rng.randrange(n)
    season = rng.choice((None, None, None) + SEASONS)
    # the main group is large and the others small, so that the subject the caption names first is the one that
    # fills the picture (at 64 px a small object is a dozen pixels tall)
    objects = tuple(_random_object(rng, POSITIONS[s], season, "large" if k == main else "small")
                    for k, s in enumerate(slots))
    time_of_day = rng.choices(TIMES, weights=(50, 12, 12, 26))[0]
    low_sun_slot = {"dawn": 0, "dusk": 2}.get(time_of_day)
    if any(o.slot == low_sun_slot and o.size == "large" for o in objects):
        time_of_day = "day"  # a large object would hide the low sun
    weather = _random_weather(rng, time_of_day, season)
    sky = _random_sky(rng, time_of_day, weather)
    sky_slot = _sky_slot(objects, time_of_day, rng) if sky in ("sun", "crescent moon", "full moon") else None
    backdrops = [None, None, "mountains", "hills"]
    if n == 1 and objects[0].kind != "mountain":
        backdrops.append("mountain")
    scene = Scene(
        objects=objects,
        backdrop=rng.choice(backdrops),
        birds=rng.choice((0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)),
        sky=sky,
        time=time_of_day,
        season=season,
        weather=weather,
        technique=rng.choice(TECHNIQUES),
        main=main,
        sky_slot=sky_slot,
        phrasing=rng.randrange(1 << 30),
    )
    while len(caption_tokens(caption_for(scene))) > MAX_CAPTION_TOKENS:
        shorter = _shorten(scene, rng)
        if shorter == scene:
            break
        scene = shorter
    return scene
