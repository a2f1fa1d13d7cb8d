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
description that drives the drawing.  It opens with a heading that names the
main group in fixed words ("Two statues on the right."), then describes the
print: every object group is named with its count, size and position, and the
other words (materials, states, details, sky, time, season, weather,
technique) each have a visible effect in the picture.  ``metadata.jsonl``
keeps that scene description (the ground truth) beside each caption, and
``grounded_match`` reads a caption back against it.

Generation is deterministic: item ``index`` with ``seed`` always produces the
same scene and caption, and the same PNG bytes for a given image size,
regardless of worker count or order, because each item uses its own
``random.Random`` seeded from ``(seed, index)``.

Usage::

    python -m data.engravings --out DIR [--num-items N] [--image-size S]

The output follows the Hugging Face ``imagefolder`` convention:
``DIR/images/00000.png ...`` and ``DIR/metadata.jsonl`` with rows
``{"file_name": "images/00000.png", "text": "<caption>", "truth": {...}}``.
The metadata file is written last and atomically, so its presence marks a
complete set; ``DIR/generator.json`` names the generator version that wrote it.

The modules, in the order an item is made:

- ``vocabulary``: the kinds, sizes, positions, scenery and techniques, and the words that name each;
- ``scene``: ``PlacedObject`` and ``Scene`` (what one item shows) and ``truth_for`` (its ground truth);
- ``captions``: the caption grammar, ``caption_for`` and ``caption_tokens``;
- ``random_scenes``: ``make_scene``, item ``index`` of the set with ``seed``;
- ``grounding``: ``grounded_match``, a caption read back against the truth;
- ``canvas``, ``nature``, ``buildings``, ``scenery``, ``drawing``: the drawing, from strokes to the plate
  (``draw_scene``);
- ``dataset``: ``generate``, ``ensure_sample`` and ``GENERATOR_VERSION``; ``cli``: the command line.
"""

from .captions import MAX_CAPTION_TOKENS, caption_for, caption_tokens
from .cli import main
from .dataset import DEFAULT_IMAGE_SIZE, DEFAULT_NUM_ITEMS, GENERATOR_VERSION, ensure_sample, generate, render
from .drawing import draw_scene
from .grounding import grounded_match
from .random_scenes import make_scene
from .scene import PlacedObject, Scene, truth_for
from .vocabulary import BACKDROPS, KIND_NAMES, KINDS, POSITIONS, SEASONS, SIZES, SKIES, TECHNIQUES, TIMES, WEATHERS

__all__ = [
    "DEFAULT_NUM_ITEMS",
    "DEFAULT_IMAGE_SIZE",
    "MAX_CAPTION_TOKENS",
    "GENERATOR_VERSION",
    "KINDS",
    "KIND_NAMES",
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
