import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.engravings import (
    MAX_CAPTION_TOKENS,
    PlacedObject,
    Scene,
    caption_for,
    caption_tokens,
    dataset,
    draw_scene,
    ensure_sample,
    generate,
    main,
    make_scene,
    render,
)

REPO_DIR = Path(__file__).resolve().parent.parent


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
        assert set(row) == {"file_name", "text", "truth"}
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
    assert dataset._file_name(3, 100) == "images/00003.png"
    assert dataset._file_name(3, 1_000_001) == "images/0000003.png"


def test_generate_returns_out_dir_as_path(tmp_path):
    out = generate(str(tmp_path / "s"), num_items=2, image_size=32, workers=1, progress=False)
    assert out == tmp_path / "s"
    assert (out / "metadata.jsonl").is_file()


def test_interrupted_generation_leaves_no_metadata(tmp_path, monkeypatch):
    out = tmp_path / "s"
    generate(out, num_items=4, image_size=32, workers=1, progress=False)
    calls = {"n": 0}
    real = dataset._render_task

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(dataset, "_render_task", flaky)
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

    monkeypatch.setattr(dataset, "generate", boom)
    assert ensure_sample(small_set, num_items=24, image_size=32) == small_set
    assert (meta.stat().st_mtime_ns, img.stat().st_mtime_ns) == before
    assert capsys.readouterr().out == ""


def test_ensure_sample_generates_when_missing(tmp_path, capsys):
    out = ensure_sample(tmp_path / "fresh", num_items=5, image_size=32)
    assert len(_read_metadata(out)) == 5
    printed = capsys.readouterr().out
    assert "engraving" in printed and "5" in printed


@pytest.fixture
def old_home(tmp_path, monkeypatch):
    """data/engravings/ in a checkout updated from before the generator became a package there: the package's code
    beside the set that earlier versions generated into that folder."""
    home = tmp_path / "data" / "engravings"
    generate(home, num_items=4, image_size=16, workers=1, progress=False)
    (home / "__init__.py").write_text("")
    monkeypatch.setattr(dataset, "OLD_HOME", home)
    return home


def test_ensure_sample_moves_a_set_generated_into_the_package_folder_to_data_bundled(old_home, capsys,
                                                                                     monkeypatch):
    before = (old_home / "metadata.jsonl").read_bytes()
    monkeypatch.setattr(dataset, "generate", lambda *a, **k: pytest.fail("the old set must be moved, not redone"))
    out = ensure_sample(old_home.parent / "bundled", num_items=4, image_size=16)
    assert (out / "metadata.jsonl").read_bytes() == before
    assert len(list((out / "images").iterdir())) == 4
    assert sorted(p.name for p in old_home.iterdir()) == ["__init__.py"]  # only the code stays
    assert "Moved the bundled set" in capsys.readouterr().out


def test_ensure_sample_leaves_the_old_set_alone_when_data_bundled_exists_or_another_folder_is_asked(old_home):
    ensure_sample(old_home.parent / "elsewhere", num_items=2, image_size=16)
    (old_home.parent / "bundled").mkdir()
    ensure_sample(old_home.parent / "bundled", num_items=2, image_size=16)
    assert len(_read_metadata(old_home)) == 4
    assert len(_read_metadata(old_home.parent / "bundled")) == 2


# --- captions follow the scene ----------------------------------------------------
# (richer caption tests: tests/test_engravings_captions.py)


def test_render_caption_is_built_from_the_scene():
    for i in range(20):
        _, caption = render(i, 32, seed=4)
        assert caption == caption_for(make_scene(i, seed=4))


def test_every_caption_fits_the_token_limit():
    for i in range(1000):
        assert len(caption_tokens(caption_for(make_scene(i)))) <= MAX_CAPTION_TOKENS


# --- pictures ---------------------------------------------------------------------


def test_images_are_not_blank(small_set):
    for i, p in enumerate(sorted((small_set / "images").iterdir())):
        a = np.asarray(Image.open(p))
        technique = make_scene(i).technique
        # anti-aliased strokes are grey at 32 px; lithographs are printed in grey ink
        ink = (a < (200 if technique == "lithograph" else 160)).mean()
        assert 0.05 < ink < (0.8 if technique == "mezzotint" else 0.6), (p.name, ink)  # mezzotint: a dark sky
        assert (a >= 200).mean() > 0.15, p.name  # light paper remains


def test_images_have_black_line_art_on_light_paper_at_128():
    for i in range(12):
        if make_scene(i).technique in ("mezzotint", "aquatint"):  # tone, not only lines
            continue
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


@pytest.mark.slow
def test_python_m_data_engravings_writes_a_set(tmp_path):
    """The command the README gives runs the package's __main__ and writes a complete set."""
    result = subprocess.run([sys.executable, "-m", "data.engravings", "--out", str(tmp_path / "s"), "--num-items", "3",
                             "--image-size", "16", "--quiet"], cwd=REPO_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(_read_metadata(tmp_path / "s")) == 3
