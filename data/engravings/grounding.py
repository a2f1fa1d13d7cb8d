"""Reading a caption back against the truth: ``grounded_match``."""

from __future__ import annotations

import re

from .captions import caption_tokens
from .vocabulary import (
    COUNT_WORDS,
    EPITHETS,
    KIND_NAMES,
    MATERIAL_WORDS,
    POSITION_WORDS,
    SIZE_WORDS,
    SKY_WORDS,
    STATE_WORDS,
    TALL_SIZE_WORDS,
    TECHNIQUE_WORDS,
)


def _alternation(phrases) -> str:
    """Regex matching any of ``phrases`` (tokenized) as whole tokens, longest first."""
    tokenized = sorted({" ".join(caption_tokens(p)) for p in phrases}, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(p) for p in tokenized) + ")"


def _meanings(table: dict) -> dict:
    """{meaning: phrases} -> {tokenized phrase: meaning}: what each phrase of a caption table says."""
    return {" ".join(caption_tokens(p)): meaning for meaning, phrases in table.items() for p in phrases}


def _phrase_re(phrases) -> re.Pattern:
    """Regex finding any of ``phrases`` (tokenized) as whole tokens in a tokenized caption."""
    return re.compile(r"(?<!\S)" + _alternation(phrases) + r"(?!\S)")


def _lexicon():
    nouns = {}
    for kind, names in KIND_NAMES.items():
        for singular, plural in names:
            nouns[" ".join(caption_tokens(singular))] = (kind, False)
            nouns[" ".join(caption_tokens(plural))] = (kind, True)
    counts = {**_meanings(COUNT_WORDS), "an": 1}
    adjectives = [w for ws in (*SIZE_WORDS.values(), *TALL_SIZE_WORDS.values(), *MATERIAL_WORDS.values(),
                               *STATE_WORDS.values(), *EPITHETS.values()) for w in ws]
    adjectives += ["single-masted", "two-masted", "three-masted", "two-arched", "three-arched", "battlemented",
                   "spired", "turreted", "gabled", "hip-roofed", "banded", "striped"]
    return nouns, counts, _meanings(POSITION_WORDS), adjectives, _meanings(TECHNIQUE_WORDS), _meanings(SKY_WORDS)


_NOUNS, _COUNTS, _POSITION_PHRASES, _ADJECTIVES, _TECHNIQUE_PHRASES, _SKY_PHRASES = _lexicon()
_NOUN_RE, _POSITION_RE, _TECHNIQUE_RE, _SKY_RE = map(_phrase_re, (_NOUNS, _POSITION_PHRASES, _TECHNIQUE_PHRASES,
                                                                _SKY_PHRASES))
_COUNT_RE = re.compile(r"(?:^|\s)(" + _alternation(_COUNTS) + r")((?:\s" + _alternation(_ADJECTIVES) + r")*)$")
_BOUNDARY_RE = re.compile(r"[,;:.()]")
_SENTENCE_RE = re.compile(r"[;:.()]")


def _stated_count(before: str) -> int | None:
    m = _COUNT_RE.search(before.rstrip())
    return _COUNTS[m.group(1)] if m else None


def _stated_position(text: str, noun: re.Match, count_start: int) -> str | None:
    """The position phrase right after the noun (up to a comma or the next object), else right before it."""
    after = text[noun.end():]
    cut = [m.start() for m in (_BOUNDARY_RE.search(after), _NOUN_RE.search(after)) if m]
    after = after[: min(cut)] if cut else after
    m = _POSITION_RE.search(after)
    if m:
        return _POSITION_PHRASES[m.group(0)]
    before = text[:count_start]
    stops = [m.end() for m in _SENTENCE_RE.finditer(before)]
    before = before[stops[-1]:] if stops else before
    found = list(_POSITION_RE.finditer(before))
    if not found or _NOUN_RE.search(before[found[-1].end():]):
        return None
    return _POSITION_PHRASES[found[-1].group(0)]


def _first_phrase(pattern: re.Pattern, meanings: dict, text: str):
    """What the first phrase of ``pattern`` in ``text`` means, or None when there is none."""
    m = pattern.search(text)
    return meanings[m.group(0)] if m else None


def grounded_match(caption: str, truth: dict) -> dict:
    """Does ``caption`` name the main object of ``truth`` (any synonym), with its count and its position, the
    print's technique, and the sky with its time of day?

    Reads the first mention of the main kind: the count from the words before the noun ("a", "two",
    "a pair of", ...; the noun's number must agree), the position from the phrase next to it
    ("on the left", "in the centre", ...). The technique is that of the first technique phrase
    ("woodcut", "lithographic print", ...), the sky that of the first sky phrase ("at dusk", "beneath a
    sickle moon", "by day", ...: each names a time of day and what stands in the sky). A truth without a
    technique (or a time of day), or with None for it, gives no "technique" (or "sky") key, so that it is
    not counted as wrong. Never raises: a garbled caption gives False.
    """
    result = {"object": False, "count": False, "position": False}
    try:
        text = " ".join(caption_tokens(caption))
        if truth.get("technique") is not None:
            result["technique"] = _first_phrase(_TECHNIQUE_RE, _TECHNIQUE_PHRASES, text) == truth["technique"]
        if truth.get("time") is not None:
            result["sky"] = _first_phrase(_SKY_RE, _SKY_PHRASES, text) == (truth["time"], truth.get("sky"))
        main = truth["main"]
        noun = next((m for m in _NOUN_RE.finditer(text) if _NOUNS[m.group(0)][0] == main["kind"]), None)
        if noun is None:
            return result
        result["object"] = True
        plural = _NOUNS[noun.group(0)][1]
        count = _stated_count(text[: noun.start()])
        result["count"] = count == main["count"] and plural == (count != 1)
        m = _COUNT_RE.search(text[: noun.start()].rstrip())
        start = m.start(1) if m else noun.start()
        result["position"] = _stated_position(text, noun, start) == main["position"]
    except (KeyError, TypeError, AttributeError):
        pass
    return result

