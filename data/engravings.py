"""Procedural "engraving" dataset: black line art with hatching, plus catalogue captions.

Every item is a small print on light paper: a horizon and one to three groups
of objects standing in left / centre / right slots (30 kinds: ships, boats,
trees, houses, churches, castles, towers, windmills, obelisks, tents, ...; one
to three of a kind per group, each with a size and, where it applies, a
material, a state and a detail such as a ship's masts), and scenery: a
mountain range or hills, birds, the sun / moon / stars / clouds, the time of
day, the season and the weather.  The print technique changes the drawing too
(woodcut: bold lines, etching: fine lines, aquatint: grey tone instead of
hatching, mezzotint: a dark ground, lithograph: grey ink).

The caption reads like a catalogue entry and is produced from the same scene
description that drives the drawing: every object group is named with its
count, size and position, and the other words (materials, states, details,
sky, time, season, weather, technique) each have a visible effect in the
picture.  ``metadata.jsonl`` keeps that scene description (the ground truth)
beside each caption, and ``grounded_match`` reads a caption back against it.

Generation is deterministic: item ``index`` with ``seed`` always produces the
same scene and caption, and the same PNG bytes for a given image size,
regardless of worker count or order, because each item uses its own
``random.Random`` seeded from ``(seed, index)``.

Usage::

    python data/engravings.py --out DIR [--num-items N] [--image-size S]
    python -m data.engravings --out DIR

The output follows the Hugging Face ``imagefolder`` convention:
``DIR/images/00000.png ...`` and ``DIR/metadata.jsonl`` with rows
``{"file_name": "images/00000.png", "text": "<caption>", "truth": {...}}``.
The metadata file is written last and atomically, so its presence marks a
complete set; ``DIR/generator.json`` names the generator version that wrote it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = [
    "DEFAULT_NUM_ITEMS",
    "DEFAULT_IMAGE_SIZE",
    "MAX_CAPTION_TOKENS",
    "GENERATOR_VERSION",
    "KINDS",
    "SIZES",
    "POSITIONS",
    "SKIES",
    "TIMES",
    "SEASONS",
    "WEATHERS",
    "TECHNIQUES",
    "BACKDROPS",
    "PlacedObject",
    "Scene",
    "make_scene",
    "caption_for",
    "truth_for",
    "caption_tokens",
    "grounded_match",
    "draw_scene",
    "render",
    "generate",
    "ensure_sample",
    "main",
]

DEFAULT_NUM_ITEMS = 5141
DEFAULT_IMAGE_SIZE = 128
MAX_CAPTION_TOKENS = 40  # words + punctuation as the trainer splits them; fits --max_caption_len=48 whole
GENERATOR_VERSION = 3  # bump when captions or drawings change: ensure_sample then regenerates the set

# --------------------------------------------------------------------------
# Vocabulary: what can be drawn, and the words that name it
# --------------------------------------------------------------------------

# Object kinds that occupy a slot: (width / height, names as (singular, plural)).
# The first name is the plain one; every name belongs to exactly one kind.
_KIND_TABLE = {
    "ship": (0.85, ("ship", "ships"), ("vessel", "vessels"), ("sailing ship", "sailing ships"),
             ("frigate", "frigates"), ("galleon", "galleons"), ("barque", "barques"), ("brig", "brigs"),
             ("schooner", "schooners"), ("merchantman", "merchantmen")),
    "boat": (1.6, ("boat", "boats"), ("rowing boat", "rowing boats"), ("rowboat", "rowboats"),
             ("skiff", "skiffs"), ("dinghy", "dinghies"), ("punt", "punts"), ("wherry", "wherries")),
    "tree": (0.75, ("tree", "trees"), ("oak", "oaks"), ("elm", "elms"), ("broadleaf tree", "broadleaf trees"),
             ("chestnut", "chestnuts"), ("linden", "lindens"), ("sycamore", "sycamores")),
    "pine": (0.5, ("pine", "pines"), ("pine tree", "pine trees"), ("fir", "firs"), ("fir tree", "fir trees"),
             ("conifer", "conifers"), ("spruce", "spruces"), ("larch", "larches")),
    "cypress": (0.3, ("cypress", "cypresses"), ("cypress tree", "cypress trees"), ("poplar", "poplars")),
    "palm": (0.75, ("palm", "palms"), ("palm tree", "palm trees"), ("date palm", "date palms")),
    "bush": (1.3, ("bush", "bushes"), ("shrub", "shrubs"), ("thornbush", "thornbushes"), ("hedge", "hedges")),
    "house": (0.9, ("house", "houses"), ("cottage", "cottages"), ("dwelling", "dwellings"),
              ("farmhouse", "farmhouses"), ("homestead", "homesteads"), ("residence", "residences"),
              ("villa", "villas")),
    "hut": (0.95, ("hut", "huts"), ("hovel", "hovels"), ("shack", "shacks"), ("cabin", "cabins"),
            ("shelter", "shelters"), ("bothy", "bothies")),
    "mountain": (1.25, ("mountain", "mountains"), ("peak", "peaks"), ("summit", "summits"), ("alp", "alps")),
    "rock": (1.3, ("rock", "rocks"), ("boulder", "boulders"), ("outcrop", "outcrops"), ("stone block", "stone blocks"),
             ("crag", "crags")),
    "figure": (0.4, ("figure", "figures"), ("traveller", "travellers"), ("wanderer", "wanderers"),
               ("walker", "walkers"), ("wayfarer", "wayfarers"), ("pilgrim", "pilgrims"), ("person", "people"),
               ("rambler", "ramblers"), ("passer-by", "passers-by")),
    "statue": (0.42, ("statue", "statues"), ("sculpture", "sculptures"), ("effigy", "effigies"),
               ("monument", "monuments")),
    "windmill": (0.8, ("windmill", "windmills"), ("mill", "mills"), ("post mill", "post mills")),
    "church": (0.8, ("church", "churches"), ("chapel", "chapels"), ("kirk", "kirks"),
               ("parish church", "parish churches"), ("abbey", "abbeys"), ("priory", "priories")),
    "bridge": (2.0, ("bridge", "bridges"), ("footbridge", "footbridges"), ("viaduct", "viaducts")),
    "castle": (1.0, ("castle", "castles"), ("fortress", "fortresses"), ("fort", "forts"),
               ("stronghold", "strongholds"), ("citadel", "citadels"), ("chateau", "chateaux")),
    "tower": (0.36, ("tower", "towers"), ("watchtower", "watchtowers"), ("round tower", "round towers"),
              ("keep", "keeps"), ("belvedere", "belvederes"), ("donjon", "donjons")),
    "lighthouse": (0.42, ("lighthouse", "lighthouses"), ("beacon", "beacons"), ("pharos", "pharoses")),
    "obelisk": (0.26, ("obelisk", "obelisks"), ("monolith", "monoliths")),
    "pyramid": (1.4, ("pyramid", "pyramids"), ("pyramidal tomb", "pyramidal tombs")),
    "column": (0.3, ("column", "columns"), ("pillar", "pillars"), ("colonnette", "colonnettes")),
    "gateway": (0.9, ("gateway", "gateways"), ("archway", "archways"), ("gate", "gates"), ("portal", "portals"),
                ("gatehouse", "gatehouses")),
    "haystack": (1.0, ("haystack", "haystacks"), ("hayrick", "hayricks"), ("rick", "ricks"),
                 ("haycock", "haycocks"), ("stook", "stooks")),
    "tent": (1.1, ("tent", "tents"), ("pavilion", "pavilions"), ("marquee", "marquees"), ("bivouac", "bivouacs")),
    "cross": (0.45, ("cross", "crosses"), ("wayside cross", "wayside crosses"), ("crucifix", "crucifixes"),
              ("calvary", "calvaries")),
    "well": (0.8, ("well", "wells"), ("wellhead", "wellheads"), ("draw well", "draw wells")),
    "signpost": (0.55, ("signpost", "signposts"), ("fingerpost", "fingerposts"), ("guidepost", "guideposts"),
                 ("waymarker", "waymarkers")),
    "tombstone": (0.6, ("tombstone", "tombstones"), ("gravestone", "gravestones"), ("headstone", "headstones"),
                  ("grave marker", "grave markers"), ("stele", "stelae")),
    "pagoda": (0.65, ("pagoda", "pagodas"), ("tiered temple", "tiered temples")),
}
KINDS = tuple(_KIND_TABLE)
_ASPECT = {kind: row[0] for kind, row in _KIND_TABLE.items()}
KIND_NAMES = {kind: row[1:] for kind, row in _KIND_TABLE.items()}
_WIDTH_ALLOWANCE = {"mountain": 1.15, "bridge": 1.3, "house": 1.05, "castle": 1.05, "boat": 1.2, "pyramid": 1.15,
                    "rock": 1.1, "bush": 1.1}
_ON_WATER = ("ship", "boat")
_TALL = ("tower", "lighthouse", "obelisk", "column", "cypress", "pine", "church", "windmill", "statue", "pagoda")
# Words that are true of every drawing of a kind (a fluted column, a thatched hut, ...).
_EPITHETS = {
    "ship": ("rigged", "ocean-going", "seagoing", "square-rigged"),
    "boat": ("open", "oared", "clinker-built"),
    "tree": ("spreading", "leafy", "broad-crowned", "shady"),
    "pine": ("evergreen", "tiered", "needled"),
    "cypress": ("slender", "columnar", "flame-shaped", "dark"),
    "palm": ("feathery", "fronded", "tropical", "curving"),
    "bush": ("rounded", "dense", "low-growing"),
    "house": ("chimneyed", "two-windowed", "pitched-roofed", "rustic"),
    "hut": ("thatched", "humble", "primitive"),
    "mountain": ("rugged", "jagged", "steep", "snow-capped"),
    "rock": ("craggy", "weathered", "massive", "rough"),
    "figure": ("cloaked", "lone", "striding", "coated"),
    "statue": ("pedestalled", "carved", "sculpted"),
    "windmill": ("four-sailed", "sail-driven", "working"),
    "church": ("steepled", "spired", "gothic", "arch-windowed"),
    "bridge": ("humped", "low", "sturdy"),
    "castle": ("walled", "fortified", "medieval", "gated"),
    "tower": ("round", "cylindrical", "defensive"),
    "lighthouse": ("tapering", "coastal", "lantern-topped"),
    "obelisk": ("tapering", "pointed", "four-sided", "commemorative"),
    "pyramid": ("four-sided", "triangular", "ancient"),
    "column": ("fluted", "classical", "capitalled"),
    "gateway": ("arched", "vaulted", "monumental", "corniced"),
    "haystack": ("domed", "rounded", "heaped"),
    "tent": ("pitched", "peaked", "canvas", "guyed"),
    "cross": ("upright", "plinthed", "commemorative"),
    "well": ("roofed", "covered", "windlassed"),
    "signpost": ("two-armed", "pointing", "roadside"),
    "tombstone": ("rounded", "inscribed", "upright", "lettered"),
    "pagoda": ("three-tiered", "tiered", "multi-roofed", "eastern"),
}

SIZES = ("small", "large")
_SIZE_WORDS = {
    "small": ("small", "little", "modest", "diminutive", "tiny", "slight", "petite", "miniature", "compact",
              "undersized", "wee", "dwarfish"),
    "large": ("large", "big", "great", "grand", "huge", "massive", "imposing", "mighty", "immense", "enormous",
              "vast", "colossal", "sizeable", "monumental", "majestic"),
}
_TALL_SIZE_WORDS = {"small": ("short", "low", "stubby", "squat", "stunted"),
                    "large": ("tall", "lofty", "towering", "soaring", "high", "statuesque")}

POSITIONS = ("left", "center", "right")
_POSITION_WORDS = {
    "left": ("on the left", "at the left", "on the left-hand side", "at the far left", "on the left side",
             "at left", "at the left of the sheet", "on the left of the plate", "at the left edge"),
    "center": ("in the centre", "in the center", "in the middle", "at the centre", "at center", "centre stage",
               "in the middle of the sheet", "at the centre of the plate", "in mid-picture"),
    "right": ("on the right", "at the right", "on the right-hand side", "at the far right", "on the right side",
              "at right", "at the right of the sheet", "on the right of the plate", "at the right edge"),
}

_COUNT_WORDS = {
    1: ("a", "one", "a single", "a lone", "a solitary", "an isolated"),
    2: ("two", "a pair of", "a couple of", "twin", "a brace of"),
    3: ("three", "a trio of", "a group of three", "a row of three", "a cluster of three", "a set of three"),
}

# Materials, states and details each change the drawing of the kinds they apply to.
_MATERIALS = {
    "house": ("stone", "brick", "wooden"),
    "hut": ("stone", "wooden"),
    "tower": ("stone", "brick"),
    "windmill": ("stone", "brick", "wooden"),
    "church": ("stone", "brick"),
    "bridge": ("stone", "brick", "wooden"),
    "lighthouse": ("stone", "brick"),
    "well": ("stone", "brick"),
    "gateway": ("stone", "brick"),
}
_MATERIAL_WORDS = {
    "stone": ("stone", "masonry", "ashlar", "stone-built", "dressed-stone", "freestone", "blockwork"),
    "brick": ("brick", "brick-built", "redbrick", "brickwork", "coursed-brick"),
    "wooden": ("wooden", "timber", "timbered", "plank", "weatherboarded", "clapboard", "board-built"),
}
_RUINABLE = ("house", "hut", "tower", "windmill", "church", "castle", "lighthouse", "gateway", "column", "obelisk",
             "bridge", "well", "pagoda", "statue")
_STATES = {kind: ("ruined",) for kind in _RUINABLE}
_STATES.update({"ship": ("anchored",), "tree": ("bare",)})
_STATE_WORDS = {
    "ruined": ("ruined", "crumbling", "derelict", "tumbledown", "broken", "dilapidated", "decayed", "shattered",
               "ruinous", "fallen", "damaged", "collapsing", "half-ruined", "wrecked"),
    "anchored": ("anchored", "moored", "unrigged", "furled", "idle", "becalmed"),
    "bare": ("bare", "leafless", "bare-branched", "barren", "skeletal", "naked", "dead"),
}
_DETAILS = {
    "ship": (1, 2, 3),  # masts
    "bridge": (2, 3),  # arches (not for wooden bridges)
    "tower": ("battlemented", "conical"),
    "castle": ("battlemented", "turreted"),
    "house": ("gabled", "hipped"),
    "figure": (None, "staff", "hat"),
    "lighthouse": (2, 3),  # dark bands
}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Scenery.
SKIES = ("sun", "crescent moon", "full moon", "stars", "clouds")
TIMES = ("day", "dawn", "dusk", "night")  # dawn: a low sun on the left; dusk: a low sun on the right
SEASONS = ("winter", "autumn", "summer")  # white ground and bare trees / falling leaves / tall grass
WEATHERS = ("rain", "storm", "snow", "mist")
TECHNIQUES = ("engraving", "etching", "woodcut", "aquatint", "mezzotint", "lithograph")
BACKDROPS = ("mountains", "hills", "mountain")
# Outline width and hatch spacing of each technique, relative to a line engraving.
_TECHNIQUE_LINES = {"engraving": (1.0, 1.0), "etching": (0.6, 0.8), "woodcut": (2.0, 1.6), "aquatint": (1.0, 1.0),
                    "mezzotint": (1.0, 1.0), "lithograph": (1.3, 1.1)}

_TECHNIQUE_WORDS = {
    "engraving": ("engraving", "line engraving", "copperplate engraving", "copper engraving", "burin engraving",
                  "engraved plate", "steel engraving", "intaglio engraving", "copperplate print"),
    "etching": ("etching", "etched plate", "etched print", "needle etching", "bitten etching", "hard-ground etching"),
    "woodcut": ("woodcut", "woodblock print", "woodcut print", "block print", "relief print", "woodblock",
                "xylograph"),
    "aquatint": ("aquatint", "aquatint print", "aquatint plate", "resin-ground aquatint", "sugar-lift aquatint"),
    "mezzotint": ("mezzotint", "mezzotint print", "mezzotint plate", "rocked mezzotint", "scraped mezzotint"),
    "lithograph": ("lithograph", "lithographic print", "crayon lithograph", "planographic print", "chalk lithograph"),
}
_TECHNIQUE_MANNER = {
    "engraving": ("in crisp hatched lines", "with close parallel hatching", "in precise lines",
                  "with regular hatching", "in clean, incised lines", "with disciplined, even hatching",
                  "in sharp, tapering strokes", "with meticulous linework"),
    "etching": ("in fine, delicate lines", "in thin lines", "with light, fine hatching", "in spare, slender lines",
                "in wiry, nervous lines", "with airy, open hatching", "in faint hairlines", "with a light touch"),
    "woodcut": ("in bold black lines", "in heavy, coarse lines", "with thick strokes", "in strong, broad lines",
                "in blunt, chunky cuts", "with emphatic contours", "in stark, robust lines", "with weighty outlines"),
    "aquatint": ("in soft grey tones", "with tonal washes", "in flat grey tone", "with grainy tone",
                 "in smooth, even tints", "with pale tonal areas", "in muted half-tones", "with watery tonal shading"),
    "mezzotint": ("in deep, velvety darks", "on a dark ground", "in rich dark tones", "with a shadowy ground",
                  "in sombre, burnished tones", "with gloomy, saturated darkness", "in dusky blacks",
                  "with luminous forms against darkness"),
    "lithograph": ("in soft grey crayon", "in pale grey lines", "with a grey, chalky line", "in greyish ink",
                   "in muted, silvery greys", "with a soft, grainy stroke", "in subdued pencil-like lines",
                   "with a hazy grey contour"),
}
_SKY_WORDS = {
    ("day", "sun"): ("under a bright sun", "in full sun", "beneath a blazing sun", "on a sunny day",
                     "under a midday sun", "in sunshine", "beneath a radiant sun", "in brilliant sunlight",
                     "under a noonday sun", "in the glare of the sun", "beneath a shining sun", "in warm sunlight"),
    ("day", "clouds"): ("under a cloudy sky", "beneath scudding clouds", "under passing clouds",
                        "with clouds overhead", "on a cloudy day", "beneath billowing clouds", "under drifting clouds",
                        "beneath puffy cumulus", "under a clouded sky", "with rounded clouds above"),
    ("day", None): ("by day", "in daylight", "on a clear day", "under an open sky", "in the daytime",
                    "under an empty sky", "on a cloudless day", "in plain daylight", "beneath a pale sky"),
    ("dawn", "sun"): ("at dawn", "at sunrise", "at daybreak", "in the early morning", "as the sun rises",
                      "at first light", "at break of day", "as morning breaks", "with the rising sun",
                      "at cockcrow", "as the day begins"),
    ("dusk", "sun"): ("at dusk", "at sunset", "at sundown", "in the evening", "as the sun sets",
                      "at the close of day", "at eventide", "with the setting sun", "as evening falls",
                      "at day's end", "in the late evening"),
    ("night", "crescent moon"): ("under a crescent moon", "by the light of a crescent moon",
                                 "beneath a sickle moon", "at night under a crescent moon", "under a thin moon",
                                 "beneath a waxing crescent", "under a horned moon"),
    ("night", "full moon"): ("under a full moon", "by the light of a full moon", "beneath a round full moon",
                             "at night under a full moon", "under a bright round moon", "beneath a shining full moon",
                             "in full moonlight"),
    ("night", "stars"): ("under the stars", "beneath a starry sky", "on a starlit night", "at night under the stars",
                         "beneath twinkling stars", "under a star-strewn sky", "on a moonless, starry night",
                         "beneath the constellations"),
}
_WEATHER_WORDS = {
    "rain": ("in the rain", "in steady rain", "during a shower", "in a downpour", "as rain falls",
             "in pouring rain", "amid slanting rain", "in a drizzle", "in wet weather", "under falling rain"),
    "storm": ("in a storm", "during a thunderstorm", "as lightning strikes", "in a tempest", "in stormy weather",
              "amid thunder and lightning", "in a violent gale", "during a squall", "in driving rain and lightning",
              "as a storm breaks"),
    "snow": ("in falling snow", "during a snowfall", "as snow falls", "amid drifting snowflakes", "in a flurry",
             "in a blizzard", "under swirling snow", "as flakes descend"),
    "mist": ("in the mist", "in fog", "in a haze", "through drifting mist", "in foggy weather", "amid low vapour",
             "in a thin haze", "in murky weather", "through veils of mist"),
}
_SEASON_WORDS = {
    "winter": ("in winter", "in deep winter", "in wintry weather", "on snowy ground", "in the frozen season",
               "amid snowbound fields", "in midwinter", "on a frosty day", "in the cold season", "on white ground"),
    "autumn": ("in autumn", "in the fall", "as leaves fall", "among falling leaves", "in autumnal weather",
               "in late autumn", "as foliage drops", "amid fluttering leaves", "in the harvest season"),
    "summer": ("in summer", "in high summer", "in midsummer", "amid tall grass", "among summer grasses",
               "in the summertime", "amid long grasses", "in the warm season", "among lush tussocks"),
}
_BACKDROP_WORDS = {
    "mountains": ("mountains in the distance", "a mountain range beyond", "with distant peaks behind",
                  "before a range of mountains", "a line of far mountains", "a sierra on the horizon",
                  "a chain of mountains behind", "against a mountainous skyline"),
    "hills": ("hills in the distance", "rolling hills beyond", "low hills behind", "before a line of hills",
              "gentle hills on the horizon", "undulating downs behind", "a hilly skyline beyond",
              "softly rounded hills behind"),
    "mountain": ("a mountain behind", "a great mountain beyond", "a lone peak rising behind",
                 "a solitary mountain in the background"),
}
_SETTING_WORDS = {
    "sea": ("at sea", "on the sea", "off the coast", "on open water", "in a bay", "by the shore", "along the coast",
            "on choppy waves", "in an estuary", "on the ocean", "in coastal waters", "on a rippling sea"),
    "river": ("on a river", "over a stream", "by the river", "along the riverbank", "on the water",
              "over a brook", "across a creek", "above flowing water", "by the riverside"),
    "land": ("in open country", "in a meadow", "on a plain", "in the countryside", "in a field", "on the heath",
             "on level ground", "on flat land", "in pastureland", "on the moor", "in farmland", "on grassland"),
    "valley": ("in a valley", "among the hills", "in upland country", "in a dale", "in a glen", "in the highlands"),
}
_TITLE_WORDS = {
    "sea": ("Coastal view", "Seascape", "Marine view", "Shore scene", "Marine piece", "Maritime scene",
            "Harbour approach", "Waterside view"),
    "river": ("River landscape", "River view", "Riverside scene", "Riverscape", "View of a crossing"),
    "night": ("Nocturne", "Night piece", "Night scene", "Moonlight study", "Evening quiet"),
    "winter": ("Winter landscape", "Winter scene", "Winter view", "Snowscape", "Frozen landscape"),
    "storm": ("The storm", "Storm scene", "Stormy landscape", "Thunder over the land", "Tempest"),
    "ruins": ("Ruins", "Landscape with ruins", "Picturesque ruins", "Study of ruins", "Antiquities", "Remains",
              "Memento of decay"),
    "any": ("Landscape", "View", "Study", "Pastoral scene", "Rural view", "Capriccio", "Prospect", "Vista",
            "Scene", "Sketch", "Vignette", "Composition", "Plate", "Picturesque view", "Topographical view",
            "Untitled", "Sheet from an album", "Souvenir", "Impression", "Illustration", "Frontispiece",
            "Tailpiece", "Headpiece", "Idyll", "Veduta", "Panorama", "Tableau", "Romantic landscape",
            "Arcadian scene", "Landscape study", "Travel sketch", "Record of a journey", "Antiquarian view",
            "Miscellaneous subject", "Proof impression", "Collector's print", "Loose leaf", "Book plate",
            "Exercise in perspective", "Specimen plate", "Memorandum", "Recollection", "Rustic motif"),
}
_BORDER_WORDS = ("within a ruled border", "inside a single ruled line", "with a thin border line",
                 "framed by a plain rule", "with a ruled margin", "within a narrow frame line",
                 "bounded by a printed outline", "with a blank paper margin")
_VERBS = {  # (singular, plural)
    "water": (("sails", "sail"), ("rides", "ride"), ("floats", "float"), ("drifts", "drift"), ("glides", "glide"),
              ("cruises", "cruise"), ("bobs", "bob")),
    "anchored": (("lies at anchor", "lie at anchor"), ("rests", "rest"), ("waits", "wait"), ("idles", "idle")),
    "walk": (("walks", "walk"), ("strolls", "stroll"), ("wanders", "wander"), ("pauses", "pause"),
             ("roams", "roam"), ("treads", "tread"), ("lingers", "linger"), ("travels", "travel")),
    "grow": (("stands", "stand"), ("grows", "grow"), ("spreads", "spread"), ("flourishes", "flourish"),
             ("thrives", "thrive")),
    "tall": (("rises", "rise"), ("soars", "soar"), ("stands", "stand"), ("looms", "loom"), ("climbs", "climb"),
             ("reaches skyward", "reach skyward")),
    "span": (("spans the water", "span the water"), ("stretches", "stretch"), ("leads over", "lead over"),
             ("straddles the stream", "straddle the stream")),
    "lie": (("lies", "lie"), ("sits", "sit"), ("rests", "rest"), ("squats", "squat"), ("hunkers", "hunker")),
    "stand": (("stands", "stand"), ("sits", "sit"), ("rises", "rise"), ("is seen", "are seen"),
              ("appears", "appear"), ("is placed", "are placed"), ("is set", "are set"), ("is shown", "are shown"),
              ("is visible", "are visible"), ("is depicted", "are depicted"), ("is drawn", "are drawn"),
              ("is situated", "are situated"), ("stands out", "stand out"), ("is positioned", "are positioned"),
              ("is located", "are located"), ("is portrayed", "are portrayed"), ("is represented", "are represented"),
              ("is pictured", "are pictured"), ("remains", "remain"), ("presides", "preside")),
}
_VERB_CLASS = {"ship": "water", "boat": "water", "figure": "walk", "tree": "grow", "pine": "grow", "palm": "grow",
               "bush": "grow", "cypress": "tall", "tower": "tall", "lighthouse": "tall", "obelisk": "tall",
               "column": "tall", "mountain": "tall", "bridge": "span", "rock": "lie", "haystack": "lie",
               "tombstone": "lie"}


# --------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlacedObject:
    """A group of ``count`` objects of one kind standing in one slot."""

    kind: str  # one of KINDS
    size: str  # "small" | "large"
    position: str  # "left" | "center" | "right"
    count: int = 1  # 1..3, drawn side by side in the slot
    material: str | None = None  # "stone" | "brick" | "wooden" where the kind has one
    state: str | None = None  # "ruined" | "anchored" | "bare" where the kind has one
    detail: object = None  # kind-specific: masts / arches / bands (int), roof or top style (str)

    @property
    def slot(self) -> int:
        return POSITIONS.index(self.position)

    def truth(self) -> dict:
        return {"kind": self.kind, "count": self.count, "size": self.size, "position": self.position,
                "material": self.material, "state": self.state, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything the caption talks about; the renderer draws exactly this."""

    objects: tuple  # tuple[PlacedObject, ...], ordered left to right
    backdrop: str | None = None  # one of BACKDROPS or None
    birds: int = 0  # number of birds drawn (0 = none)
    sky: str | None = None  # one of SKIES or None
    time: str = "day"  # one of TIMES
    season: str | None = None  # one of SEASONS or None
    weather: str | None = None  # one of WEATHERS or None
    technique: str = "engraving"  # one of TECHNIQUES
    main: int = 0  # index in objects of the group the caption names first
    sky_slot: int | None = None  # slot the sun or moon stands over
    phrasing: int = 0  # seed of the caption's sentence form and synonyms

    @property
    def night(self) -> bool:
        return self.time == "night" or self.sky in ("crescent moon", "full moon", "stars")

    def kinds(self) -> list:
        return [o.kind for o in self.objects]

    def ground(self) -> str:
        kinds = self.kinds()
        if any(k in _ON_WATER for k in kinds):
            return "sea"
        return "river" if "bridge" in kinds else "land"


def truth_for(scene: Scene) -> dict:
    """The generator's ground truth for one item (stored beside its caption in metadata.jsonl)."""
    return {
        "main": scene.objects[scene.main].truth(),
        "objects": [o.truth() for o in scene.objects],
        "sky": scene.sky,
        "sky_position": None if scene.sky_slot is None else POSITIONS[scene.sky_slot],
        "time": scene.time,
        "season": scene.season,
        "weather": scene.weather,
        "technique": scene.technique,
        "backdrop": scene.backdrop,
        "birds": scene.birds,
    }


# --------------------------------------------------------------------------
# Caption grammar: small phrase builders, each drawing its synonyms from ``r``
# --------------------------------------------------------------------------


def caption_tokens(text: str) -> list:
    """Words and punctuation as the trainer's tokenizer splits a caption."""
    return re.findall(r"\w+(?:['’]\w+)*|[^\w\s]", str(text).lower())


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _size_word(obj: PlacedObject, r: random.Random) -> str:
    words = _SIZE_WORDS[obj.size] + (_TALL_SIZE_WORDS[obj.size] if obj.kind in _TALL else ())
    return r.choice(words)


def _detail_adjective(obj: PlacedObject) -> str | None:
    if obj.kind == "ship":
        return "single-masted" if obj.detail == 1 else f"{_NUMBER_WORDS[obj.detail]}-masted"
    if obj.kind == "bridge" and obj.detail:
        return f"{_NUMBER_WORDS[obj.detail]}-arched"
    if obj.kind in ("tower", "castle", "house", "lighthouse"):
        return {"battlemented": "battlemented", "conical": "spired", "turreted": "turreted", "gabled": "gabled",
                "hipped": "hip-roofed", 2: "banded", 3: "striped"}[obj.detail]
    return None


def _detail_suffix(obj: PlacedObject, r: random.Random) -> str | None:
    d = obj.detail
    if obj.kind == "ship":
        return "with one mast" if d == 1 else f"with {_NUMBER_WORDS[d]} masts"
    if obj.kind == "bridge" and d:
        return r.choice((f"of {_NUMBER_WORDS[d]} arches", f"on {_NUMBER_WORDS[d]} arches"))
    if obj.kind == "lighthouse":
        return f"with {_NUMBER_WORDS[d]} dark bands"
    return {
        "battlemented": "with battlements", "conical": "with a conical roof", "turreted": "with pointed turrets",
        "gabled": "with a gabled roof", "hipped": "with a hipped roof", "staff": "with a staff", "hat": "in a hat",
    }.get(d)


def _noun(obj: PlacedObject, r: random.Random) -> str:
    singular, plural = r.choice(KIND_NAMES[obj.kind])
    return singular if obj.count == 1 else plural


def _noun_phrase(obj: PlacedObject, r: random.Random, level: int) -> str:
    """E.g. "two small ruined stone towers with battlements" (count, size, state, material, noun, detail)."""
    count_word = r.choice(_COUNT_WORDS[obj.count]) if level < 3 else _COUNT_WORDS[obj.count][0]
    words = [count_word, _size_word(obj, r)]
    if obj.state is not None:
        words.append(r.choice(_STATE_WORDS[obj.state]))
    if obj.material is not None and level < 2 and r.random() < 0.8:
        words.append(r.choice(_MATERIAL_WORDS[obj.material]))
    if obj.kind in _EPITHETS and level < 1 and r.random() < 0.35 and not (obj.kind == "tree" and obj.state):
        words.append(r.choice(_EPITHETS[obj.kind]))
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
    return r.choice(_POSITION_WORDS[obj.position]) if level < 3 else _POSITION_WORDS[obj.position][0]


def _verb(obj: PlacedObject, r: random.Random) -> str:
    if obj.kind == "ship" and obj.state == "anchored":
        cls = "anchored"
    else:
        cls = _VERB_CLASS.get(obj.kind, "stand")
    singular, plural = r.choice(_VERBS[cls])
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
    num = _NUMBER_WORDS[n]
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
        phrases.append(r.choice(_BACKDROP_WORDS[scene.backdrop]))
    if scene.birds:
        phrases.append(_birds_phrase(scene.birds, r))
    sky_words = _SKY_WORDS.get((scene.time, scene.sky))
    if sky_words is not None:
        phrases.append(r.choice(sky_words))
    if scene.weather is not None:
        phrases.append(r.choice(_WEATHER_WORDS[scene.weather]))
    if scene.season is not None:
        phrases.append(r.choice(_SEASON_WORDS[scene.season]))
    light = _light_phrase(scene, r)
    if light is not None and level < 2 and r.random() < 0.5:
        phrases.append(light)
    if level < 3 and r.random() < 0.4:
        ground = scene.ground()
        if ground == "land" and scene.backdrop in ("hills", "mountains") and r.random() < 0.5:
            ground = "valley"
        phrases.append(r.choice(_SETTING_WORDS[ground]))
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
    return r.choice(_TITLE_WORDS[r.choice(themes)])


def _technique(scene: Scene, r: random.Random, level: int) -> str:
    text = r.choice(_TECHNIQUE_WORDS[scene.technique])
    if level < 1 and r.random() < 0.5:
        text += " " + r.choice(_TECHNIQUE_MANNER[scene.technique])
    elif level < 1 and r.random() < 0.3:
        text += " " + r.choice(_BORDER_WORDS)
    return text


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _articles(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _compose(scene: Scene, r: random.Random, level: int) -> str:
    """One caption in one of five catalogue forms; the main group always comes first, with its position."""
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
    return _articles(text)


def caption_for(scene: Scene) -> str:
    """The richest phrasing of ``scene`` that fits in MAX_CAPTION_TOKENS tokens."""
    for level in range(4):
        text = _compose(scene, random.Random(f"caption-{scene.phrasing}"), level)
        if len(caption_tokens(text)) <= MAX_CAPTION_TOKENS:
            break
    return text


# --------------------------------------------------------------------------
# Random scenes
# --------------------------------------------------------------------------


def _scene_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"engraving-{seed}-{index}")


def _max_count(kind: str, size: str) -> int:
    """How many objects of this kind fit side by side in a slot (overlapping by a tenth).

    A group may shrink by a quarter to fit; a pair of small objects by more than half.
    """
    slot = 0.95 * 0.94 / 3
    height = 0.47 if size == "large" else 0.205
    fits = {n: _ASPECT[kind] * (1 + 0.92 * (n - 1)) * height * shrink <= slot
            for n, shrink in ((2, 0.75 if size == "large" else 0.45), (3, 0.75))}
    return 3 if fits[3] else 2 if fits[2] else 1


def _random_object(rng: random.Random, position: str, season: str | None, size: str) -> PlacedObject:
    kind = rng.choice(KINDS)
    count = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
    count = min(count, _max_count(kind, size))
    material = rng.choice((None,) + _MATERIALS[kind]) if kind in _MATERIALS else None
    state = rng.choice((None, None) + _STATES[kind]) if kind in _STATES else None
    if kind == "tree" and season == "winter":
        state = "bare"
    detail = rng.choice(_DETAILS[kind]) if kind in _DETAILS else None
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


# --------------------------------------------------------------------------
# Reading a caption back against the truth
# --------------------------------------------------------------------------


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
    counts = {**_meanings(_COUNT_WORDS), "an": 1}
    adjectives = [w for ws in (*_SIZE_WORDS.values(), *_TALL_SIZE_WORDS.values(), *_MATERIAL_WORDS.values(),
                               *_STATE_WORDS.values(), *_EPITHETS.values()) for w in ws]
    adjectives += ["single-masted", "two-masted", "three-masted", "two-arched", "three-arched", "battlemented",
                   "spired", "turreted", "gabled", "hip-roofed", "banded", "striped"]
    return nouns, counts, _meanings(_POSITION_WORDS), adjectives, _meanings(_TECHNIQUE_WORDS), _meanings(_SKY_WORDS)


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
    def __init__(self, size: int, rng: random.Random, technique: str = "engraving"):
        self.size = size
        self.S = float(size)
        self.rng = rng
        self.paper = rng.randint(236, 249)
        self.ink = rng.randint(70, 100) if technique == "lithograph" else rng.randint(10, 45)
        self.img = Image.new("L", (size, size), self.paper)
        self.d = ImageDraw.Draw(self.img)
        line, spacing = _TECHNIQUE_LINES[technique]
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
    for _ in range(3):
        wx = x + rng.uniform(-0.45, 0.3) * w
        ww = rng.uniform(0.12, 0.2) * w
        cv.d.arc([wx, b - 0.02 * h, wx + ww, b + 0.05 * h + 2], 200, 340, fill=cv.ink, width=cv.hw)


def _draw_tree(cv, x, b, w, h, rng, sd, obj):
    tw = 0.09 * w
    lean = rng.uniform(-0.04, 0.04) * w
    trunk = [(x - tw, b), (x + tw, b), (x + 0.6 * tw + lean, b - 0.5 * h), (x - 0.6 * tw + lean, b - 0.5 * h)]
    cv.shape(trunk)
    cv.hatch(poly=trunk, planes=[_shade_side(x, sd)], angle=90, spacing=0.7, trim=0)
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
        cv.hatch(poly=tri, planes=[_shade_side(x, sd)], angle=90 - sd * 30, spacing=0.75)
        cv.hatch(poly=tri, planes=[_below(yb - 0.25 * th * h)], angle=0, spacing=1.4)


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
        cv.hatch(poly=wall, planes=[_shade_side(x, sd)], angle=90, spacing=1.2)
    hipped = obj.detail == "hipped" if obj.detail else rng.random() < 0.35
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


def _draw_mountain(cv, x, b, w, h, rng, sd, obj=None, light_outline=False):
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
    cv.hatch(poly=coat, planes=[_shade_side(x, sd)], angle=90 + sd * 30, spacing=0.8)
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


def _draw_windmill(cv, x, b, w, h, rng, sd, obj):
    tower = [(x - 0.24 * w, b), (x + 0.24 * w, b), (x + 0.14 * w, b - 0.6 * h), (x - 0.14 * w, b - 0.6 * h)]
    cv.shape(tower)
    if obj.material is not None:
        _material(cv, tower, obj.material)
    else:
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
    if obj.material == "brick":
        _material(cv, band, "brick")
    cv.line([(x - 0.5 * w, b), (x + 0.5 * w, b)], width=cv.hw)


def _draw_castle(cv, x, b, w, h, rng, sd, obj):
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
            cv.hatch(poly=box, planes=[_shade_side((x0 + x1) / 2, sd)], angle=90, spacing=1.0)
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
        cv.hatch(poly=cone, planes=[_shade_side(x, sd)], angle=90 - sd * 30, spacing=0.85)


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
        cv.hatch(poly=tower, planes=[_shade_side(x + sd * 0.1 * w, sd)], angle=90, spacing=1.0)
    n_bands = obj.detail or rng.choice((2, 3))
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
    planes = _halfplanes(poly)
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


def _ruin(cv, x, b, w, h, rng):
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


def _bare_branches(cv, x, y, length, angle, depth, rng):
    """A leafless crown: each branch forks in two, thinner and shorter."""
    a = math.radians(angle)
    x1, y1 = x + length * math.cos(a), y + length * math.sin(a)
    cv.line([(x, y), (x1, y1)], width=max(cv.hw, round(cv.ow * depth / 3)))
    if depth > 1:
        for turn in (-1, 1):
            _bare_branches(cv, x1, y1, length * rng.uniform(0.55, 0.7), angle + turn * rng.uniform(20, 40),
                           depth - 1, rng)


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
        cv.hatch(circle=(cx, cy, r), planes=[_below(cy)], angle=45 if sd > 0 else 135, spacing=0.9)


def _draw_hut(cv, x, b, w, h, rng, sd, obj):
    wall = [(x - 0.4 * w, b), (x + 0.4 * w, b), (x + 0.4 * w, b - 0.45 * h), (x - 0.4 * w, b - 0.45 * h)]
    cv.shape(wall)
    _material(cv, wall, obj.material or "plain")
    roof = [(x - 0.52 * w, b - 0.43 * h), (x + 0.52 * w, b - 0.43 * h), (x, b - h)]
    cv.shape(roof)
    cv.hatch(poly=roof, angle=90, spacing=0.6)
    _dark_opening(cv, [(x - 0.1 * w, b), (x + 0.1 * w, b), (x + 0.1 * w, b - 0.3 * h), (x - 0.1 * w, b - 0.3 * h)])


def _draw_rock(cv, x, b, w, h, rng, sd, obj):
    pts = [(x - 0.5 * w, b)]
    for k in range(1, 6):
        a = math.pi - math.pi * k / 6
        r = rng.uniform(0.8, 1.0)
        pts.append((x + 0.5 * w * r * math.cos(a), b - h * r * math.sin(a) ** 0.7))
    pts.append((x + 0.5 * w, b))
    cv.shape(pts)
    cv.hatch(poly=pts, planes=[_shade_side(x, sd)], angle=90 - sd * 30, spacing=0.7)
    cv.line([(x - 0.1 * w, b - 0.7 * h), (x, b - 0.4 * h), (x - 0.05 * w, b - 0.1 * h)], width=cv.hw)


def _draw_statue(cv, x, b, w, h, rng, sd, obj):
    plinth = [(x - 0.45 * w, b), (x + 0.45 * w, b), (x + 0.45 * w, b - 0.3 * h), (x - 0.45 * w, b - 0.3 * h)]
    cv.shape(plinth)
    cv.hatch(poly=plinth, planes=[_shade_side(x, sd)], angle=90, spacing=0.8)
    cv.line([(x - 0.5 * w, b - 0.3 * h), (x + 0.5 * w, b - 0.3 * h)], width=cv.ow)
    _draw_figure(cv, x, b - 0.3 * h, w, 0.7 * h, rng, sd, PlacedObject("figure", "small", "center", detail="staff"))


def _draw_obelisk(cv, x, b, w, h, rng, sd, obj):
    step = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x + 0.5 * w, b - 0.06 * h), (x - 0.5 * w, b - 0.06 * h)]
    cv.shape(step)
    shaft = [(x - 0.32 * w, b - 0.06 * h), (x + 0.32 * w, b - 0.06 * h), (x + 0.2 * w, b - 0.88 * h),
             (x - 0.2 * w, b - 0.88 * h)]
    cv.shape(shaft)
    cv.hatch(poly=shaft, planes=[_shade_side(x, sd)], angle=90, spacing=0.7)
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
        span = _span(_halfplanes(tri), y)
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
    cv.hatch(poly=shaft, planes=[_shade_side(x + sd * 0.18 * w, sd)], angle=90, spacing=0.6, trim=0)
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


def _draw_haystack(cv, x, b, w, h, rng, sd, obj):
    pts = [(x + 0.5 * w * math.cos(math.pi * k / 12), b - 0.9 * h * math.sin(math.pi * k / 12) ** 0.8)
           for k in range(13)]
    cv.shape(pts)
    cv.hatch(poly=pts, angle=80, spacing=0.8)
    cv.hatch(poly=pts, planes=[_shade_side(x, sd)], angle=100, spacing=0.8)
    cv.line([(x, b - 0.85 * h), (x, b - h)], width=cv.ow)


def _draw_tent(cv, x, b, w, h, rng, sd, obj):
    body = [(x - 0.5 * w, b), (x + 0.5 * w, b), (x, b - 0.9 * h)]
    cv.shape(body)
    cv.hatch(poly=body, planes=[_shade_side(x, sd)], angle=90 - sd * 25, spacing=0.8)
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
    cv.hatch(poly=stone, planes=[_shade_side(x + sd * 0.25 * w, sd)], angle=90, spacing=0.7)
    for k in range(3):  # the inscription
        y = b - (0.35 + 0.13 * k) * h
        cv.line([(x - 0.22 * w, y), (x + 0.18 * w, y)], width=cv.hw)


def _draw_pagoda(cv, x, b, w, h, rng, sd, obj):
    y = b
    for k in range(3):
        bw, th = 0.36 * w * (1 - 0.2 * k), 0.22 * h
        body = [(x - bw, y), (x + bw, y), (x + bw, y - th * 0.6), (x - bw, y - th * 0.6)]
        cv.shape(body)
        cv.hatch(poly=body, planes=[_shade_side(x, sd)], angle=90, spacing=0.7)
        rw = bw + 0.14 * w
        roof = [(x - rw, y - th * 0.5), (x + rw, y - th * 0.5), (x + bw * 0.7, y - th), (x - bw * 0.7, y - th)]
        cv.shape(roof)
        cv.hatch(poly=roof, angle=90, spacing=0.7)
        y -= th
    cv.line([(x, y), (x, b - h)], width=cv.ow)


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
    "boat": _draw_boat,
    "cypress": _draw_cypress,
    "palm": _draw_palm,
    "bush": _draw_bush,
    "hut": _draw_hut,
    "rock": _draw_rock,
    "statue": _draw_statue,
    "obelisk": _draw_obelisk,
    "pyramid": _draw_pyramid,
    "column": _draw_column,
    "gateway": _draw_gateway,
    "haystack": _draw_haystack,
    "tent": _draw_tent,
    "cross": _draw_cross,
    "well": _draw_well,
    "signpost": _draw_signpost,
    "tombstone": _draw_tombstone,
    "pagoda": _draw_pagoda,
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


def draw_scene(scene: Scene, image_size: int, rng: random.Random, supersample: int | None = None) -> Image.Image:
    """Draw ``scene`` as a grayscale ("L") engraving of ``image_size`` pixels."""
    ss = supersampling(image_size) if supersample is None else max(1, int(supersample))
    if ss > 1:
        return _draw_scene(scene, image_size * ss, rng).reduce(ss)
    return _draw_scene(scene, image_size, rng)


def _layout(scene: Scene, cv: _Canvas, gy: float, inset: float, slot_w: float, rng: random.Random) -> list:
    """(obj, x, base, w, h) of every drawn object: a group of ``count`` side by side in its slot."""
    S = cv.S
    margin = inset + 0.015 * S
    placed = []
    for obj in scene.objects:
        large = obj.size == "large"
        h = S * (rng.uniform(0.44, 0.5) if large else rng.uniform(0.19, 0.22))
        w = _ASPECT[obj.kind] * h
        if obj.count == 1:
            wmax = S * (0.29 if large else 0.17) * _WIDTH_ALLOWANCE.get(obj.kind, 1.0)
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
            if obj.kind in _ON_WATER:
                base = gy + S * (rng.uniform(0.05, 0.07) if large else rng.uniform(0.025, 0.035))
            else:
                base = gy + S * (rng.uniform(0.02, 0.05) if large else rng.uniform(0.0, 0.015))
            placed.append((obj, x, base, w, hk))
    return placed


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


def _draw_flakes(cv, x0, y0, x1, y1, n, rng, leaves=False):
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


def _draw_scene(scene: Scene, image_size: int, rng: random.Random) -> Image.Image:
    """The whole plate, back to front: sky, backdrop, ground, objects, birds, falling snow or leaves, margin.
    Every part draws from the one ``rng``, in this order (the bundled set depends on it)."""
    cv = _Canvas(image_size, rng, scene.technique)
    S = cv.S
    inset = max(1.0, round(0.03 * S))  # the plate's margin
    gy = S * rng.uniform(0.66, 0.72)  # the horizon
    slot_w = (S - 2 * inset) / 3  # slots tile the inside of the plate border
    placed = _layout(scene, cv, gy, inset, slot_w, rng)

    body_slot = scene.sky_slot if scene.sky_slot is not None else rng.randrange(3)
    body_x = inset + slot_w * (body_slot + 0.5) + rng.uniform(-0.04, 0.04) * S
    lit = scene.sky in ("sun", "crescent moon", "full moon")
    sd = (1 if body_x < S / 2 else -1) if lit else rng.choice((-1, 1))  # shadows fall on this side (+1: right)

    body_y, body_r, sky_boxes = _draw_sky(cv, scene, gy, inset, slot_w, body_x, sd, rng)
    _draw_backdrop(cv, scene, placed, gy, inset, sd, rng)
    _draw_ground(cv, scene, placed, gy, inset, slot_w, rng)
    _draw_objects(cv, placed, sd, rng)
    if scene.birds:
        keep_clear = [(x - w / 2, base - h, x + w / 2, base) for _, x, base, w, h in placed] + sky_boxes
        if lit:
            rr = body_r * 2.0
            keep_clear.append((body_x - rr, body_y - rr, body_x + rr, body_y + rr))
        _draw_flock(cv, scene.birds, keep_clear, gy, inset, rng)
    if scene.weather == "snow":  # falling over everything
        _draw_flakes(cv, inset, inset, S - inset, S - inset, 45, rng)
    elif scene.season == "autumn":
        _draw_flakes(cv, inset, inset, S - inset, S - inset, 18, rng, leaves=True)
    _draw_margin(cv, inset)
    return cv.img


def _draw_sky(cv, scene, gy, inset, slot_w, body_x, sd, rng):
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
        cv.hatch(circle=(body_x, body_y, body_r), planes=[_shade_side(body_x + 0.45 * body_r, sd)],
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


def _draw_backdrop(cv, scene, placed, gy, inset, sd, rng):
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
        _draw_mountain(cv, mx, gy, mw, gy - apex_y, rng, sd, light_outline=True)
    if scene.weather == "mist":
        _draw_mist(cv, inset, S - inset, gy - 0.2 * S, gy - 1, rng)


def _draw_ground(cv, scene, placed, gy, inset, slot_w, rng):
    """The horizon line and, slot by slot below it, sea under boats, a river under a bridge, land elsewhere."""
    S = cv.S
    bottom = S - inset
    cv.line([(inset, gy), (S - inset, gy)], width=cv.hw)
    kinds_at = {obj.slot: obj.kind for obj, *_ in placed}
    for s in range(3):
        x0, x1 = inset + s * slot_w, inset + (s + 1) * slot_w
        kind = kinds_at.get(s)
        if kind in _ON_WATER:
            _draw_sea(cv, x0, x1, gy, bottom, rng)
        elif kind == "bridge":
            _draw_river(cv, x0, x1, gy, bottom, rng)
        else:
            _draw_land(cv, x0, x1, gy, bottom, rng, scene.season)


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
            _ruin(cv, x, base, w, h, rng)


def _draw_flock(cv, n, keep_clear, gy, inset, rng):
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


def _draw_margin(cv, inset):
    """The plate's paper margin, ``inset`` wide, over anything drawn into it, and the border line inside it."""
    ii = int(inset)
    size = cv.size
    cv.d.rectangle([0, 0, size - 1, ii - 1], fill=cv.paper)
    cv.d.rectangle([0, size - ii, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([0, 0, ii - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([size - ii, 0, size - 1, size - 1], fill=cv.paper)
    cv.d.rectangle([ii, ii, size - 1 - ii, size - 1 - ii], outline=cv.ink, width=cv.ow)


def render(index: int, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0):
    """Render item ``index``: returns ``(PIL.Image in mode "L", caption)``."""
    scene = make_scene(index, seed)
    img = draw_scene(scene, int(image_size), _draw_rng(index, seed))
    return img, caption_for(scene)


# --------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------

METADATA = "metadata.jsonl"
VERSION_FILE = "generator.json"  # the generator version that wrote the set


def _file_name(index: int, num_items: int) -> str:
    digits = max(5, len(str(max(0, num_items - 1))))
    return f"images/{index:0{digits}d}.png"


def _render_task(task):
    index, image_size, seed, out_dir, file_name = task
    scene = make_scene(index, seed)
    img = draw_scene(scene, image_size, _draw_rng(index, seed))
    img.save(os.path.join(out_dir, file_name), format="PNG")
    return index, caption_for(scene), truth_for(scene)


def generate(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    workers: int | None = None,
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
    rows = [None] * num_items

    from tqdm import tqdm

    if workers == 1:
        with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
            for task in tasks:
                i, caption, truth = _render_task(task)
                rows[i] = {"file_name": names[i], "text": caption, "truth": truth}
                bar.update(1)
    else:
        import multiprocessing as mp

        chunk = max(1, min(64, num_items // (workers * 8)))
        with mp.Pool(workers) as pool:  # created before tqdm starts its monitor thread
            with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
                for i, caption, truth in pool.imap_unordered(_render_task, tasks, chunksize=chunk):
                    rows[i] = {"file_name": names[i], "text": caption, "truth": truth}
                    bar.update(1)

    version = {"version": GENERATOR_VERSION, "num_items": num_items, "image_size": int(image_size), "seed": int(seed)}
    (out / VERSION_FILE).write_text(json.dumps(version) + "\n", encoding="utf-8")
    tmp = out / (METADATA + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta)
    return out


def _written_version(out: Path) -> int | None:
    try:
        return json.loads((out / VERSION_FILE).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # sets written before version 2 have no version file


def ensure_sample(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
) -> Path:
    """Generate the bundled sample into ``out_dir`` unless it is complete and from this generator version."""
    out = Path(out_dir)
    if (out / METADATA).exists() and _written_version(out) == GENERATOR_VERSION:
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
