"""Catalogue captions of the bundled engravings: vocabulary, limits, ground truth and grounded_match."""

import json

import pytest

import data.engravings as eng
from data.engravings import (
    DEFAULT_NUM_ITEMS,
    KIND_NAMES,
    MAX_CAPTION_TOKENS,
    caption_for,
    caption_tokens,
    ensure_sample,
    generate,
    grounded_match,
    grounding,
    make_scene,
    truth_for,
)


@pytest.fixture(scope="module")
def default_captions():
    """Captions of the default collection, computed without drawing."""
    return [caption_for(make_scene(i)) for i in range(DEFAULT_NUM_ITEMS)]


def _truth(kind="tower", count=2, position="left", technique="etching"):
    main = {"kind": kind, "count": count, "size": "small", "position": position}
    return {"main": main, "objects": [main], "technique": technique}


def _sky_truth(time, sky):
    return {**_truth(), "time": time, "sky": sky}


# --- vocabulary and form -------------------------------------------------------


def test_default_collection_has_a_vocabulary_of_at_least_1000_words(default_captions):
    vocab = {w for c in default_captions for w in caption_tokens(c)}
    print(f"vocabulary: {len(vocab)} words")
    assert len(vocab) >= 1000


def test_almost_every_caption_is_distinct(default_captions):
    share = len(set(default_captions)) / len(default_captions)
    print(f"distinct captions: {share:.4f}")
    assert share > 0.99


def test_every_default_caption_fits_in_max_caption_tokens(default_captions):
    longest = max(len(caption_tokens(c)) for c in default_captions)
    print(f"longest caption: {longest} tokens")
    assert longest <= MAX_CAPTION_TOKENS <= 46  # --max_caption_len=48 holds <bos> + 46 + <eos>


def test_every_kind_and_technique_appears(default_captions):
    scenes = [make_scene(i) for i in range(600)]
    assert {o.kind for s in scenes for o in s.objects} == set(eng.KINDS)
    assert {s.technique for s in scenes} == set(eng.TECHNIQUES)


def test_caption_tokens_match_the_trainer_tokenizer():
    assert caption_tokens("Two brick-built towers; Collector's print.") == [
        "two", "brick", "-", "built", "towers", ";", "collector's", "print", "."]


# --- determinism ------------------------------------------------------------------


def test_same_seed_gives_same_captions_and_truth():
    for i in range(50):
        assert caption_for(make_scene(i, seed=2)) == caption_for(make_scene(i, seed=2))
        assert truth_for(make_scene(i, seed=2)) == truth_for(make_scene(i, seed=2))


def test_different_seeds_give_different_captions():
    differ = sum(caption_for(make_scene(i, 0)) != caption_for(make_scene(i, 1)) for i in range(50))
    assert differ == 50


# --- ground truth ------------------------------------------------------------------


def test_truth_describes_the_scene():
    for i in range(300):
        scene = make_scene(i)
        truth = truth_for(scene)
        assert truth["main"] == truth["objects"][scene.main]
        assert [o["position"] for o in truth["objects"]] == [o.position for o in scene.objects]
        assert all(1 <= o["count"] <= 3 for o in truth["objects"])
        assert truth["technique"] in eng.TECHNIQUES and truth["time"] in eng.TIMES
        if truth["time"] == "night":
            assert truth["sky"] in ("crescent moon", "full moon", "stars")
        if truth["weather"] == "snow":
            assert truth["season"] == "winter"
        json.dumps(truth)  # plain JSON


def test_caption_names_the_main_object_first():
    for i in range(300):
        scene = make_scene(i)
        text = " ".join(caption_tokens(caption_for(scene)))
        first = grounding._NOUN_RE.search(text)
        assert grounding._NOUNS[first.group(0)][0] == scene.objects[scene.main].kind, (i, text)


def test_every_caption_opens_with_a_heading_that_grounds_the_main_group_alone():
    """Generator v4: the first sentence, what --caption_lead_weight weighs, names the main group's count, kind and
    position in fixed words, so that the lead alone reads back as right."""
    headings = set()
    for i in range(500):
        scene = make_scene(i)
        heading = caption_for(scene).split(". ")[0] + "."
        headings.add(heading)
        match = grounded_match(heading, truth_for(scene))
        assert (match["object"], match["count"], match["position"]) == (True, True, True), (i, heading)
    assert len(headings) > 60  # count x kind x position, not one sentence for all


def test_the_main_group_is_large_and_the_others_small():
    """Generator v3: the subject the caption names first fills the picture (legible at 64 px); the rest stay
    small, so that which group is the main one is never in doubt."""
    scenes = [make_scene(i) for i in range(600)]
    for i, scene in enumerate(scenes):
        assert [o.size for o in scene.objects] == [
            "large" if k == scene.main else "small" for k in range(len(scene.objects))], i
    assert {len(s.objects) for s in scenes} == {1, 2, 3}


def test_metadata_rows_carry_the_truth(tmp_path):
    out = generate(tmp_path / "s", num_items=6, image_size=32, workers=1, progress=False)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        scene = make_scene(i)
        assert row["text"] == caption_for(scene)
        assert row["truth"] == truth_for(scene)


# --- grounded_match ------------------------------------------------------------------


def test_grounded_match_accepts_every_own_caption():
    for i in range(500):
        scene = make_scene(i)
        result = grounded_match(caption_for(scene), truth_for(scene))
        assert result == {"object": True, "count": True, "position": True, "technique": True, "sky": True}, (
            i, caption_for(scene))


@pytest.mark.parametrize("caption", [
    "Etching of two small stone towers on the left, a ruined windmill in the centre.",
    "On the left, a pair of tall watchtowers rise; a mill to their right. Woodcut.",
    "Nocturne. Twin lofty round towers stand at the far left, under a full moon.",
    "At the left stand two little towers with battlements (aquatint).",
])
def test_grounded_match_accepts_synonyms_and_forms(caption):
    result = grounded_match(caption, _truth())
    assert {key: result[key] for key in ("object", "count", "position")} == {"object": True, "count": True,
                                                                             "position": True}


@pytest.mark.parametrize("caption, technique", [
    ("Etching of two small towers on the left.", "etching"),
    ("Two towers on the left. Lithographic print.", "lithograph"),
    ("Two towers on the left (copperplate engraving in crisp hatched lines).", "engraving"),
    ("Sugar-lift aquatint of two towers on the left.", "aquatint"),
    ("Woodblock print of two towers on the left, then an etching.", "woodcut"),  # the first phrase counts
])
def test_grounded_match_reads_the_technique(caption, technique):
    assert grounded_match(caption, _truth(technique=technique))["technique"] is True
    other = "mezzotint" if technique != "mezzotint" else "woodcut"
    assert grounded_match(caption, _truth(technique=other))["technique"] is False


def test_grounded_match_without_a_technique_phrase_gets_it_wrong():
    assert grounded_match("Two towers on the left.", _truth())["technique"] is False


@pytest.mark.parametrize("caption, wrong", [
    ("Etching of two small windmills on the left.", "object"),
    ("Etching of three small towers on the left.", "count"),
    ("Etching of a small tower on the left.", "count"),
    ("Etching of two small tower on the left.", "count"),
    ("Etching of two small towers on the right.", "position"),
    ("Etching of two small towers in the middle, a mill on the left.", "position"),
    ("Etching of two small towers.", "position"),
])
def test_grounded_match_rejects_the_wrong_key(caption, wrong):
    result = grounded_match(caption, _truth())
    assert result[wrong] is False
    if wrong != "object":
        assert result["object"] is True


@pytest.mark.parametrize("caption", ["", "of of , ; towers towers the the", "<unk> <unk>", None, 42,
                                     "two two two two", "on the left on the left"])
def test_grounded_match_never_raises_on_garbled_captions(caption):
    result = grounded_match(caption, _truth())
    assert set(result) == {"object", "count", "position", "technique"}
    assert result["count"] is False or result["position"] is False


def test_grounded_match_tolerates_a_bad_truth():
    assert grounded_match("two towers on the left", {}) == {"object": False, "count": False, "position": False}
    assert grounded_match("two towers on the left", None) == {"object": False, "count": False, "position": False}


@pytest.mark.parametrize("caption, time, sky", [
    ("Etching of two towers on the left, at sunset.", "dusk", "sun"),
    ("Etching of two towers on the left, at break of day.", "dawn", "sun"),
    ("Two towers on the left beneath a sickle moon. Etching.", "night", "crescent moon"),
    ("Two towers on the left on a moonless, starry night. Etching.", "night", "stars"),
    ("Two towers on the left, by day, in the mist. Etching.", "day", None),
    ("Two towers on the left, with clouds overhead, then at sunset.", "day", "clouds"),  # the first phrase counts
])
def test_grounded_match_reads_the_sky_and_time_of_day(caption, time, sky):
    assert grounded_match(caption, _sky_truth(time, sky))["sky"] is True
    assert grounded_match(caption, _sky_truth("night" if time != "night" else "day", sky))["sky"] is False
    assert grounded_match(caption, _sky_truth(time, "stars" if sky != "stars" else "full moon"))["sky"] is False


def test_grounded_match_without_a_sky_phrase_gets_it_wrong():
    assert grounded_match("Etching of two towers on the left.", _sky_truth("day", None))["sky"] is False


def test_grounded_match_leaves_the_sky_out_when_the_truth_has_no_time():
    assert "sky" not in grounded_match("Etching of two towers on the left, at dawn.", _truth())
    assert "sky" not in grounded_match("Etching of two towers on the left.", _sky_truth(None, None))
    assert "technique" not in grounded_match("Two towers on the left.", _truth(technique=None))


def test_grounded_match_leaves_the_technique_out_when_the_truth_has_none():
    truth = _truth()
    del truth["technique"]
    assert grounded_match("Etching of two towers on the left.", truth) == {"object": True, "count": True,
                                                                          "position": True}


def test_kind_names_are_unambiguous():
    names = [n for names in KIND_NAMES.values() for pair in names for n in pair]
    assert len(names) == len(set(names))


# --- ensure_sample and the generator version ----------------------------------------------


def test_ensure_sample_regenerates_a_set_from_an_older_generator(tmp_path, capsys):
    old = tmp_path / "old"
    (old / "images").mkdir(parents=True)
    (old / "metadata.jsonl").write_text(json.dumps({"file_name": "images/00000.png", "text": "a ship"}) + "\n")
    ensure_sample(old, num_items=3, image_size=32)
    rows = [json.loads(line) for line in (old / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and "truth" in rows[0]
    assert json.loads((old / "generator.json").read_text())["version"] == eng.GENERATOR_VERSION
