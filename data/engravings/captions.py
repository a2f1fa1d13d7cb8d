"""Caption grammar: small phrase builders, each drawing its synonyms from ``r``."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from .scene import PlacedObject, Scene
from .vocabulary import (
    BACKDROP_WORDS,
    BORDER_WORDS,
    COUNT_WORDS,
    EPITHETS,
    KIND_NAMES,
    MATERIAL_WORDS,
    NUMBER_WORDS,
    POSITION_WORDS,
    SEASON_WORDS,
    SETTING_WORDS,
    SIZE_WORDS,
    SKY_WORDS,
    STATE_WORDS,
    TALL,
    TALL_SIZE_WORDS,
    TECHNIQUE_MANNER,
    TECHNIQUE_WORDS,
    TITLE_WORDS,
    VERB_CLASS,
    VERBS,
    WEATHER_WORDS,
)

MAX_CAPTION_TOKENS = 46  # words + punctuation as the trainer splits them; with <bos>, <eos> fits --max_caption_len=48


def caption_tokens(text: str) -> list:
    """Words and punctuation as the trainer's tokenizer splits a caption."""
    return re.findall(r"\w+(?:['’]\w+)*|[^\w\s]", str(text).lower())


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _size_word(obj: PlacedObject, r: random.Random) -> str:
    words = SIZE_WORDS[obj.size] + (TALL_SIZE_WORDS[obj.size] if obj.kind in TALL else ())
    return r.choice(words)


def _detail_adjective(obj: PlacedObject) -> str | None:
    if obj.kind == "ship":
        return "single-masted" if obj.detail == 1 else f"{NUMBER_WORDS[obj.detail]}-masted"
    if obj.kind == "bridge" and obj.detail:
        return f"{NUMBER_WORDS[obj.detail]}-arched"
    if obj.kind in ("tower", "castle", "house", "lighthouse"):
        return {"battlemented": "battlemented", "conical": "spired", "turreted": "turreted", "gabled": "gabled",
                "hipped": "hip-roofed", 2: "banded", 3: "striped"}[obj.detail]
    return None


def _detail_suffix(obj: PlacedObject, r: random.Random) -> str | None:
    d = obj.detail
    if obj.kind == "ship":
        return "with one mast" if d == 1 else f"with {NUMBER_WORDS[d]} masts"
    if obj.kind == "bridge" and d:
        return r.choice((f"of {NUMBER_WORDS[d]} arches", f"on {NUMBER_WORDS[d]} arches"))
    if obj.kind == "lighthouse":
        return f"with {NUMBER_WORDS[d]} dark bands"
    return {
        "battlemented": "with battlements", "conical": "with a conical roof", "turreted": "with pointed turrets",
        "gabled": "with a gabled roof", "hipped": "with a hipped roof", "staff": "with a staff", "hat": "in a hat",
    }.get(d)


def _noun(obj: PlacedObject, r: random.Random) -> str:
    singular, plural = r.choice(KIND_NAMES[obj.kind])
    return singular if obj.count == 1 else plural


def _noun_phrase(obj: PlacedObject, r: random.Random, level: int) -> str:
    """E.g. "two small ruined stone towers with battlements" (count, size, state, material, noun, detail)."""
    count_word = r.choice(COUNT_WORDS[obj.count]) if level < 3 else COUNT_WORDS[obj.count][0]
    words = [count_word, _size_word(obj, r)]
    if obj.state is not None:
        words.append(r.choice(STATE_WORDS[obj.state]))
    if obj.material is not None and level < 2 and r.random() < 0.8:
        words.append(r.choice(MATERIAL_WORDS[obj.material]))
    if obj.kind in EPITHETS and level < 1 and r.random() < 0.35 and not (obj.kind == "tree" and obj.state):
        words.append(r.choice(EPITHETS[obj.kind]))
    suffix = None
    if obj.detail is not None and level < 2 and r.random() < 0.6:
        adjective = _detail_adjective(obj)
        if adjective is not None and r.random() < 0.5:
            words.append(adjective)
        else:
            suffix = _detail_suffix(obj, r)
    words.append(_noun(obj, r))
    if suffix is not None:
        words.append(suffix)
    return " ".join(words)


def _where(obj: PlacedObject, r: random.Random, level: int = 0) -> str:
    return r.choice(POSITION_WORDS[obj.position]) if level < 3 else POSITION_WORDS[obj.position][0]


def _verb(obj: PlacedObject, r: random.Random) -> str:
    if obj.kind == "ship" and obj.state == "anchored":
        cls = "anchored"
    else:
        cls = VERB_CLASS.get(obj.kind, "stand")
    singular, plural = r.choice(VERBS[cls])
    return singular if obj.count == 1 else plural


def _relation(obj: PlacedObject, main: PlacedObject, r: random.Random) -> str:
    """Where ``obj`` stands relative to the main group, e.g. "to its left", "beside them"."""
    side = "left" if obj.slot < main.slot else "right"
    it, its = ("it", "its") if main.count == 1 else ("them", "their")
    if abs(obj.slot - main.slot) == 2:
        return r.choice((f"to the far {side} of {it}", f"some way to {its} {side}", f"farther off to the {side}",
                         f"well away to the {side}", f"at a distance to {its} {side}", f"across from {it}",
                         f"opposite {it}", f"beyond {it} to the {side}"))
    return r.choice((f"to {its} {side}", f"to the {side} of {it}", f"just {side} of {it}", f"beside {it}",
                     f"next to {it}", f"close by {it}", f"alongside {it}", f"near {it}", f"hard by {it}",
                     f"adjacent to {it}", f"at {its} side", f"neighbouring {it}", f"by {its} {side} side",
                     f"immediately to {its} {side}", f"a little to {its} {side}"))


def _secondaries(scene: Scene, r: random.Random, level: int) -> list:
    """Phrases for the groups other than the main one, left to right."""
    main = scene.objects[scene.main]
    others = [o for i, o in enumerate(scene.objects) if i != scene.main]
    if len(others) == 2 and main.position == "center" and r.random() < 0.3:
        return [f"flanked by {_noun_phrase(others[0], r, level)} and {_noun_phrase(others[1], r, level)}"]
    phrases = []
    for obj in others:
        where = _where(obj, r, level) if level >= 3 or r.random() < 0.5 else _relation(obj, main, r)
        phrases.append(f"{_noun_phrase(obj, r, level)} {where}")
    return phrases


def _birds_phrase(n: int, r: random.Random) -> str:
    if n == 1:
        return r.choice(("a bird overhead", "a single bird in flight", "a bird in the sky", "one bird aloft",
                         "a solitary bird gliding", "one bird on the wing"))
    num = NUMBER_WORDS[n]
    return r.choice((f"{num} birds overhead", f"{num} birds in flight", f"{num} birds wheeling above",
                     f"a flock of {num} birds", f"{num} birds aloft", f"{num} birds on the wing",
                     f"{num} birds circling", f"{num} birds flying past", f"{num} birds soaring high",
                     f"{num} gliding birds", f"{num} birds winging by"))


def _light_phrase(scene: Scene, r: random.Random) -> str | None:
    """Which side the sun or moon lights from, when it stands over a side slot (shadows fall away from it)."""
    if scene.sky not in ("sun", "crescent moon", "full moon") or scene.sky_slot not in (0, 2):
        return None
    side, away = ("left", "right") if scene.sky_slot == 0 else ("right", "left")
    lit = "sunlit" if scene.sky == "sun" else "moonlit"
    body = "sun" if scene.sky == "sun" else "moon"
    return r.choice((f"lit from the {side}", f"{lit} from the {side}", f"shadows cast to the {away}",
                     f"with light falling from the {side}", f"shadows falling {away}ward",
                     f"the {body} in the upper {side}", f"the {body} high in the top {side} corner",
                     f"raking light from the {side}", f"illuminated from the {side}"))


def _scenery(scene: Scene, r: random.Random, level: int) -> list:
    """Phrases for backdrop, birds, sky and time, weather, season and setting."""
    phrases = []
    if scene.backdrop is not None:
        phrases.append(r.choice(BACKDROP_WORDS[scene.backdrop]))
    if scene.birds:
        phrases.append(_birds_phrase(scene.birds, r))
    sky_words = SKY_WORDS.get((scene.time, scene.sky))
    if sky_words is not None:
        phrases.append(r.choice(sky_words))
    if scene.weather is not None:
        phrases.append(r.choice(WEATHER_WORDS[scene.weather]))
    if scene.season is not None:
        phrases.append(r.choice(SEASON_WORDS[scene.season]))
    light = _light_phrase(scene, r)
    if light is not None and level < 2 and r.random() < 0.5:
        phrases.append(light)
    if level < 3 and r.random() < 0.4:
        ground = scene.ground()
        if ground == "land" and scene.backdrop in ("hills", "mountains") and r.random() < 0.5:
            ground = "valley"
        phrases.append(r.choice(SETTING_WORDS[ground]))
    r.shuffle(phrases)
    return phrases


def _title(scene: Scene, r: random.Random) -> str:
    themes = ["any"]
    ground = scene.ground()
    if ground in ("sea", "river"):
        themes.append(ground)
    if scene.time == "night":
        themes.append("night")
    if scene.season == "winter":
        themes.append("winter")
    if scene.weather == "storm":
        themes.append("storm")
    if any(o.state == "ruined" for o in scene.objects):
        themes.append("ruins")
    return r.choice(TITLE_WORDS[r.choice(themes)])


def _technique(scene: Scene, r: random.Random, level: int) -> str:
    text = r.choice(TECHNIQUE_WORDS[scene.technique])
    if level < 1 and r.random() < 0.5:
        text += " " + r.choice(TECHNIQUE_MANNER[scene.technique])
    elif level < 1 and r.random() < 0.3:
        text += " " + r.choice(BORDER_WORDS)
    return text


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _articles(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _subject(main: PlacedObject) -> str:
    """The catalogue heading that opens every caption, in the plainest words: "Two statues on the right."
    Count, kind and position of the main group, each always in the same words, so that a caption's first
    tokens say what the picture is of (what --caption_lead_weight weighs; docs/LOG.md, issue 24)."""
    singular, plural = KIND_NAMES[main.kind][0]
    noun = singular if main.count == 1 else plural
    return _capitalize(f"{COUNT_WORDS[main.count][0]} {noun} {POSITION_WORDS[main.position][0]}.")


def _compose(scene: Scene, r: random.Random, level: int) -> str:
    """A subject heading, then one caption in one of five catalogue forms; the main group always comes first,
    with its position."""
    main = scene.objects[scene.main]
    np0, where0, verb0 = _noun_phrase(main, r, level), _where(main, r, level), _verb(main, r)
    others = _secondaries(scene, r, level)
    scenery = _scenery(scene, r, level)
    tech = _technique(scene, r, level)
    title = _title(scene, r) + ". " if level < 1 and r.random() < 0.5 else ""
    form = r.randrange(5)
    if form == 0:
        body = ", ".join([f"{np0} {where0}"] + others + scenery)
        text = f"{_capitalize(tech)} of {body}."
    elif form == 1:
        head = f"{_capitalize(where0)}, {np0} {verb0}"
        tail = "".join(f"; {p}" for p in others)
        scen = f" {_capitalize(_join(scenery))}." if scenery else ""
        text = f"{title}{head}{tail}.{scen} {_capitalize(tech)}."
    elif form == 2:
        head = f"{_capitalize(np0)} {verb0} {where0}"
        tail = (", with " + _join(others)) if others else ""
        scen = f"; {_join(scenery)}" if scenery else ""
        text = f"{title}{head}{tail}{scen}. {_capitalize(tech)}."
    elif form == 3:
        head = f"{_capitalize(where0)} {verb0} {np0}"
        rest = "".join(f", {p}" for p in others + scenery)
        text = f"{title}{head}{rest} ({tech})."
    else:
        head = f"{_capitalize(np0)} {where0}"
        rest = "".join(f", {p}" for p in others + scenery)
        text = f"{title}{head}{rest}. {_capitalize(tech)}."
    return _articles(f"{_subject(main)} {text}")


def caption_for(scene: Scene) -> str:
    """The richest phrasing of ``scene`` that fits in MAX_CAPTION_TOKENS tokens."""
    for level in range(4):
        text = _compose(scene, random.Random(f"caption-{scene.phrasing}"), level)
        if len(caption_tokens(text)) <= MAX_CAPTION_TOKENS:
            break
    return text
