import json
import random
import re

import numpy as np
import pytest
from PIL import Image

import data.engravings as eng
from data.engravings import (
    BACKDROP_PHRASES,
    KINDS,
    MAX_CAPTION_WORDS,
    POSITION_PHRASES,
    SKY_PHRASES,
    PlacedObject,
    Scene,
    caption_for,
    draw_scene,
    ensure_sample,
    generate,
    main,
    make_scene,
    render,
)

OBJECT_RE = re.compile(
    r"\ba (small|large) (" + "|".join(KINDS) + r") (on the left|in the center|on the right)"
)
PHRASE_TO_POSITION = {v: k for k, v in POSITION_PHRASES.items()}


def _read_metadata(out):
    with open(out / "metadata.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _snapshot(out):
    """All bytes of a generated set: metadata plus every image."""
    files = {"metadata.jsonl": (out / "metadata.jsonl").read_bytes()}
    for p in sorted((out / "images").iterdir()):
        files[p.name] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("set")
    generate(out, num_items=24, image_size=32, seed=0, workers=1, progress=False)
    return out


# --- determinism -------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(small_set, tmp_path):
    again = generate(tmp_path / "again", num_items=24, image_size=32, seed=0, workers=1, progress=False)
    assert _snapshot(again) == _snapshot(small_set)


def test_pool_and_in_process_generation_are_identical(small_set, tmp_path):
    pooled = generate(tmp_path / "pooled", num_items=24, image_size=32, seed=0, workers=2, progress=False)
    assert _snapshot(pooled) == _snapshot(small_set)


def test_different_seeds_give_different_images_and_captions(small_set, tmp_path):
    other = generate(tmp_path / "other", num_items=24, image_size=32, seed=1, workers=1, progress=False)
    a, b = _snapshot(small_set), _snapshot(other)
    differing_images = sum(a[k] != b[k] for k in a if k.endswith(".png"))
    assert differing_images == 24
    caps_a = [r["text"] for r in _read_metadata(small_set)]
    caps_b = [r["text"] for r in _read_metadata(other)]
    assert sum(x != y for x, y in zip(caps_a, caps_b)) >= 20


def test_render_is_independent_of_call_order():
    first = [render(i, 48, seed=3)[0].tobytes() for i in (7, 2, 5)]
    random.seed(12345)  # the global RNG must not matter
    random.random()
    second = {i: render(i, 48, seed=3)[0].tobytes() for i in (5, 7, 2)}
    assert first == [second[7], second[2], second[5]]


def test_caption_does_not_depend_on_image_size():
    for i in range(10):
        caps = {render(i, size)[1] for size in (32, 64, 128)}
        assert len(caps) == 1


def test_no_two_images_are_identical(small_set):
    images = [v for k, v in _snapshot(small_set).items() if k.endswith(".png")]
    assert len(set(images)) == len(images)


# --- files and metadata -------------------------------------------------------


def test_metadata_rows_point_to_existing_images_of_requested_size_and_mode(small_set):
    rows = _read_metadata(small_set)
    assert len(rows) == 24
    assert [r["file_name"] for r in rows] == [f"images/{i:05d}.png" for i in range(24)]
    for row in rows:
        assert set(row) == {"file_name", "text"}
        path = small_set / row["file_name"]
        assert path.is_file()
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.mode == "L"
            assert im.size == (32, 32)


def test_metadata_captions_match_render(small_set):
    rows = _read_metadata(small_set)
    for i, row in enumerate(rows):
        img, caption = render(i, 32, seed=0)
        assert row["text"] == caption
        with Image.open(small_set / row["file_name"]) as im:
            assert im.tobytes() == img.tobytes()


def test_file_names_widen_beyond_five_digits():
    assert eng._file_name(3, 100) == "images/00003.png"
    assert eng._file_name(3, 1_000_001) == "images/0000003.png"


def test_generate_returns_out_dir_as_path(tmp_path):
    out = generate(str(tmp_path / "s"), num_items=2, image_size=32, workers=1, progress=False)
    assert out == tmp_path / "s"
    assert (out / "metadata.jsonl").is_file()


def test_interrupted_generation_leaves_no_metadata(tmp_path, monkeypatch):
    out = tmp_path / "s"
    generate(out, num_items=4, image_size=32, workers=1, progress=False)
    calls = {"n": 0}
    real = eng._render_task

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(eng, "_render_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(out, num_items=4, image_size=32, seed=9, workers=1, progress=False)
    assert not (out / "metadata.jsonl").exists()
    assert not (out / "metadata.jsonl.tmp").exists()


def test_cli_writes_dataset(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--num-items", "3", "--image-size", "40",
                 "--workers", "1", "--quiet"]) == 0
    rows = _read_metadata(tmp_path / "cli")
    assert len(rows) == 3
    with Image.open(tmp_path / "cli" / rows[0]["file_name"]) as im:
        assert im.size == (40, 40)


# --- ensure_sample -----------------------------------------------------------


def test_ensure_sample_does_not_regenerate_when_metadata_exists(small_set, capsys, monkeypatch):
    meta = small_set / "metadata.jsonl"
    img = small_set / "images" / "00000.png"
    before = (meta.stat().st_mtime_ns, img.stat().st_mtime_ns)

    def boom(*a, **k):
        raise AssertionError("generate must not be called")

    monkeypatch.setattr(eng, "generate", boom)
    assert ensure_sample(small_set, num_items=24, image_size=32) == small_set
    assert (meta.stat().st_mtime_ns, img.stat().st_mtime_ns) == before
    assert capsys.readouterr().out == ""


def test_ensure_sample_generates_when_missing(tmp_path, capsys):
    out = ensure_sample(tmp_path / "fresh", num_items=5, image_size=32)
    assert len(_read_metadata(out)) == 5
    printed = capsys.readouterr().out
    assert "engraving" in printed and "5" in printed


# --- captions follow the scene ----------------------------------------------------


def _objects_in_caption(caption):
    return [PlacedObject(k, s, PHRASE_TO_POSITION[p]) for s, k, p in OBJECT_RE.findall(caption)]


def test_every_caption_starts_with_prefix_and_is_short():
    for i in range(400):
        caption = caption_for(make_scene(i))
        assert caption.startswith("an engraving of a ")
        assert len(caption.split()) <= MAX_CAPTION_WORDS
        assert caption == caption.lower()


def test_caption_names_exactly_the_scene_objects_left_to_right():
    for i in range(400):
        scene = make_scene(i)
        caption = caption_for(scene)
        assert 1 <= len(scene.objects) <= 3
        assert _objects_in_caption(caption) == list(scene.objects)
        slots = [o.slot for o in scene.objects]
        assert slots == sorted(set(slots))  # distinct slots, left to right


def test_caption_names_nothing_beyond_the_scene():
    for i in range(400):
        scene = make_scene(i)
        rest = OBJECT_RE.sub("", caption_for(scene))
        # no object kind is mentioned outside the object phrases
        # (a backdrop "mountain(s)" is scenery, checked below)
        for kind in KINDS:
            if kind != "mountain":
                assert re.search(rf"\b{kind}\b", rest) is None, (i, rest)
        for sky, phrase in SKY_PHRASES.items():
            assert (phrase in rest) == (scene.sky == sky)
        for backdrop, phrase in BACKDROP_PHRASES.items():
            assert (phrase in rest) == (scene.backdrop == backdrop)
        assert ("bird" in rest) == (scene.birds > 0)
        if scene.backdrop is None:
            assert "mountain" not in rest


def test_render_caption_is_built_from_the_scene():
    for i in range(20):
        _, caption = render(i, 32, seed=4)
        assert caption == caption_for(make_scene(i, seed=4))


def test_captions_are_varied_with_modest_vocabulary():
    captions = [caption_for(make_scene(i)) for i in range(600)]
    assert len(set(captions)) > 450
    vocab = {w for c in captions for w in re.findall(r"[a-z]+", c)}
    assert 35 <= len(vocab) <= 150
    kinds_seen = {o.kind for i in range(600) for o in make_scene(i).objects}
    assert kinds_seen == set(KINDS)


# --- pictures ---------------------------------------------------------------------


def test_images_are_not_blank(small_set):
    for p in sorted((small_set / "images").iterdir()):
        a = np.asarray(Image.open(p))
        ink = (a < 160).mean()  # anti-aliased strokes are grey at 32 px
        assert 0.05 < ink < 0.6, (p.name, ink)
        assert (a >= 200).mean() > 0.15, p.name  # light paper remains


def test_images_have_black_line_art_on_light_paper_at_128():
    for i in range(12):
        a = np.asarray(render(i, 128)[0])
        dark = (a < 110).mean()
        assert 0.03 < dark < 0.4, (i, dark)
        assert (a >= 200).mean() > 0.45, i


def test_paper_is_light_and_ink_is_dark_at_128():
    img, _ = render(0, 128)
    a = np.asarray(img)
    assert 235 <= int(np.percentile(a, 75)) <= 250
    assert int(a.min()) < 60


def _band_ink_columns(kind, size, position, seed):
    scene = Scene((PlacedObject(kind, size, position),))
    S = 128
    a = np.asarray(draw_scene(scene, S, random.Random(seed)))
    inset = round(0.03 * S) + 2
    band = a[int(0.39 * S):int(0.43 * S), inset:S - inset] < 128
    return np.nonzero(band.any(axis=0))[0] + inset


@pytest.mark.parametrize("kind", ["tower", "lighthouse", "pine", "figure"])
def test_large_objects_rise_above_small_ones_in_their_slot(kind):
    S = 128
    slot_w = (S - 2 * round(0.03 * S)) / 3
    for seed in range(3):
        for pos_index, pos in enumerate(("left", "center", "right")):
            cols = _band_ink_columns(kind, "large", pos, seed)
            assert len(cols) > 0, (kind, pos, seed)
            lo = round(0.03 * S) + pos_index * slot_w
            assert cols.min() >= lo - 2 and cols.max() <= lo + slot_w + 2, (kind, pos, cols)
            assert len(_band_ink_columns(kind, "small", pos, seed)) == 0, (kind, pos, seed)
