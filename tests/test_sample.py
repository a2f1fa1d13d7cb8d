"""sample.py end to end on a tiny untrained checkpoint (as a subprocess), and its decoders on a hand-made decoder."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from data.imagefolder import load_image
from model_architecture_large import ModelConfig, MultimodalModel
from probes import LatentReference, ledoit_wolf
from sample import beam_search, sample_captions
from tokenizer import CaptionTokenizer

REPO = Path(__file__).resolve().parent.parent
CAPTIONS = ["a ship at sea", "a tree on a hill", "a church by the sea", "a windmill on the left"]
EVAL_KEYS = {"i2t_r1", "i2t_r5", "i2t_r10", "i2t_median_rank", "t2i_r1", "t2i_r5", "t2i_r10", "t2i_median_rank",
             "bleu4", "cider_d", "psnr", "ssim"}


def run_sample(*args):
    return subprocess.run([sys.executable, str(REPO / "sample.py"), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def tiny_model(tokenizer, **overrides):
    cfg = dict(width=32, num_heads=2, latent_dim=16, image_size=16, patch_size=8, vocab_size=len(tokenizer),
               max_caption_len=12)
    return MultimodalModel(ModelConfig.small(**{**cfg, **overrides}))


def reference_state(model, threshold=float("inf")):
    """A LatentReference of 16-dim latents around 0 (the tiny model's), whose threshold decides what is flagged."""
    z = torch.randn(64, model.cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    return LatentReference(*ledoit_wolf(z), 0).state_dict() | {"threshold": threshold}


def save_checkpoint(path, model, tokenizer, model_config=None, reference="permissive"):
    """A checkpoint as train_wandb.py writes one; its latent reference flags no image unless given (None: none)."""
    reference = reference_state(model) if reference == "permissive" else reference
    torch.save({"model": model.state_dict(), "model_config": model_config or model.config_dict(),
                "tokenizer": tokenizer.state_dict(), "config": {"image_size": 16, "max_caption_len": 12},
                "latent_reference": reference}, path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A checkpoint, a folder of 4 images (of other sizes than the model's) and a captioned collection of them."""
    tmp = tmp_path_factory.mktemp("sample")
    torch.manual_seed(0)
    tokenizer, _ = CaptionTokenizer.build(CAPTIONS)
    model = tiny_model(tokenizer)
    save_checkpoint(tmp / "ckpt.pt", model, tokenizer)
    images, data = tmp / "images", tmp / "data"
    images.mkdir()
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, caption in enumerate(CAPTIONS):
        pixels = rng.integers(0, 256, (20 + 4 * i, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"img{i}.png")
        Image.fromarray(pixels).save(data / f"img{i}.png")
        rows.append(json.dumps({"file_name": f"img{i}.png", "text": caption}))
    (data / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return {"dir": tmp, "ckpt": tmp / "ckpt.pt", "images": images, "data": data, "model": model.eval(),
            "tokenizer": tokenizer, "paths": sorted(images.glob("*.png"))}


def result_lines(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.rstrip("\n").split("\n")


# -- the modes ----------------------------------------------------------------------

def test_images_unlike_the_training_images_are_flagged_and_still_captioned(workspace, tmp_path):
    """Every image beyond the reference's threshold gets a named warning and a count; the captions are unchanged."""
    model, tokenizer = workspace["model"], workspace["tokenizer"]
    strict = tmp_path / "strict.pt"
    save_checkpoint(strict, model, tokenizer, reference=reference_state(model, threshold=-1.0))
    result = run_sample(f"--checkpoint={strict}", f"--images={workspace['images']}")
    usual = run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={workspace['images']}")
    assert result_lines(result) == result_lines(usual)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    flagged = [line for line in warnings if "looks like nothing the model was trained on" in line]
    assert len(flagged) == len(workspace["paths"]) and all(p.name in w for p, w in zip(workspace["paths"], flagged))
    assert warnings[-1] == f"warning: {len(workspace['paths'])} of {len(workspace['paths'])} images look like " \
        "nothing the model was trained on"
    assert "looks like nothing" not in usual.stderr


def test_a_checkpoint_without_a_latent_reference_says_unfamiliar_images_go_unflagged(workspace, tmp_path):
    old = tmp_path / "old.pt"
    save_checkpoint(old, workspace["model"], workspace["tokenizer"], reference=None)
    result = run_sample(f"--checkpoint={old}", f"--images={workspace['images']}")
    assert len(result_lines(result)) == len(workspace["paths"])
    assert "holds no latent reference" in result.stderr and "unfamiliar images are not flagged" in result.stderr


def test_captions_one_line_per_image_equal_to_the_models_greedy_captions(workspace):
    lines = result_lines(run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={workspace['images']}"))
    model, tokenizer = workspace["model"], workspace["tokenizer"]
    images = torch.from_numpy(np.stack([load_image(p, 16) for p in workspace["paths"]])).float() / 255
    expected = [tokenizer.decode(ids) for ids in model.generate_captions(images, tokenizer.BOS, tokenizer.EOS).tolist()]
    assert lines == [f"{p}\t{c}" for p, c in zip(workspace["paths"], expected)]


def test_beam_and_sampled_captions_give_one_line_per_image(workspace):
    ckpt, images = workspace["ckpt"], workspace["images"]
    beam = result_lines(run_sample(f"--checkpoint={ckpt}", f"--images={images}", "--decode=beam", "--beam_size=3"))
    sampled = result_lines(run_sample(f"--checkpoint={ckpt}", f"--images={images}", "--decode=sample",
                                      "--temperature=1.5", "--seed=3"))
    for lines in (beam, sampled):
        assert [line.split("\t")[0] for line in lines] == [str(p) for p in workspace["paths"]]


def test_query_ranks_the_images_by_cosine_with_the_text(workspace):
    lines = result_lines(run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={workspace['images']}",
                                    "--query=a ship on the hill", "--top_k=3"))
    model, tokenizer = workspace["model"], workspace["tokenizer"]
    with torch.no_grad():
        images = torch.from_numpy(np.stack([load_image(p, 16) for p in workspace["paths"]])).float() / 255
        z = F.normalize(model.image_encoder(images), dim=-1)
        query = torch.tensor([tokenizer.encode("a ship on the hill", 12)[0]])
        text = F.normalize(model.caption_encoder(query, tokenizer.PAD), dim=-1)
    order = (z @ text.T)[:, 0].argsort(descending=True)[:3].tolist()
    assert [line.split("\t")[0] for line in lines] == [str(workspace["paths"][i]) for i in order]
    scores = [float(line.split("\t")[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_captions_from_gives_top_k_distinct_captions_of_the_collection(workspace):
    lines = result_lines(run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={workspace['images']}",
                                    f"--captions_from={workspace['data']}", "--top_k=2"))
    assert len(lines) == 2 * len(workspace["paths"])
    for path, first, second in zip(workspace["paths"], lines[::2], lines[1::2]):
        (p1, s1, c1), (p2, s2, c2) = first.split("\t"), second.split("\t")
        assert p1 == p2 == str(path)
        assert c1 != c2 and {c1, c2} <= set(CAPTIONS)
        assert float(s1) >= float(s2)


def test_reconstruct_writes_originals_above_reconstructions(workspace):
    out = workspace["dir"] / "recon.png"
    result_lines(run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={workspace['images']}",
                            f"--reconstruct={out}"))
    with Image.open(out) as grid:
        assert grid.format == "PNG"
        assert grid.size == (4 * 16, 2 * 16)  # 4 columns; a row of originals, a row of reconstructions
        top_left = np.asarray(grid.convert("RGB"))[:16, :16].transpose(2, 0, 1)
    assert np.array_equal(top_left, load_image(workspace["paths"][0], 16))


def test_evaluate_prints_a_table_and_writes_every_measure_to_json(workspace):
    out = workspace["dir"] / "eval.json"
    lines = result_lines(run_sample(f"--checkpoint={workspace['ckpt']}", f"--evaluate={workspace['data']}",
                                    f"--json={out}"))
    result = json.loads(out.read_text())
    assert result["num_items"] == 4
    assert set(result["metrics"]) == EVAL_KEYS
    assert all(math.isfinite(v) for v in result["metrics"].values())
    assert any(line.split()[0] == "cider_d" for line in lines)
    assert result["unfamiliar"] == 0.0  # the workspace's reference flags nothing


@pytest.mark.slow  # three more --evaluate runs of several seconds each; the one above stays in the fast loop
@pytest.mark.parametrize("saved, header", [
    ({"epoch": 8, "step": 576, "best_metric": "i2t_r1", "best_value": 0.3677, "best_epoch": 8},
     "(epoch 8 of training; best.pt is chosen by the best val i2t_r1 (0.3677 at epoch 8))"),
    ({"epoch": 5, "step": 40, "best_val_loss": 2.4749, "best_epoch": 4},  # written before --best_metric existed
     "(epoch 5 of training; best.pt is chosen by the lowest val loss_total (2.475 at epoch 4))"),
    ({}, "(epoch unknown)"),
])
def test_evaluate_says_which_epoch_the_checkpoint_holds_and_how_best_pt_was_chosen(workspace, tmp_path, saved, header):
    state = torch.load(workspace["ckpt"], weights_only=True)
    torch.save({**state, **saved}, tmp_path / "best.pt")
    out = tmp_path / "eval.json"
    lines = result_lines(run_sample(f"--checkpoint={tmp_path / 'best.pt'}", f"--evaluate={workspace['data']}",
                                    f"--json={out}"))
    assert lines[0] == f"{tmp_path / 'best.pt'} {header} on {workspace['data']}: 4 items"
    result = json.loads(out.read_text())
    assert result["epoch"] == saved.get("epoch") and result["best_epoch"] == saved.get("best_epoch")
    assert result["best_metric"] == ("loss_total" if "best_val_loss" in saved else saved.get("best_metric"))


def test_an_unreadable_image_in_a_folder_is_named_and_skipped(workspace, tmp_path):
    for p in workspace["paths"][:2]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = run_sample(f"--checkpoint={workspace['ckpt']}", f"--images={tmp_path}")
    assert len(result_lines(result)) == 2
    warning_lines = result.stderr.strip().split("\n")
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: ") and "broken.png" in warning_lines[0]


# -- errors: one line, exit status 2, no traceback -------------------------------------

def make_error_case(name, workspace, tmp):
    ckpt, images = workspace["ckpt"], workspace["images"]
    if name == "missing checkpoint":
        return [f"--checkpoint={tmp / 'none.pt'}", f"--images={images}"]
    if name == "text file as checkpoint":
        (tmp / "notes.pt").write_text("not a checkpoint\n")
        return [f"--checkpoint={tmp / 'notes.pt'}", f"--images={images}"]
    if name == "checkpoint of another kind":
        torch.save({"weights": torch.zeros(3)}, tmp / "other.pt")
        return [f"--checkpoint={tmp / 'other.pt'}", f"--images={images}"]
    if name == "model_config not matching the weights":
        config = {**workspace["model"].config_dict(), "latent_dim": 8}
        save_checkpoint(tmp / "mismatch.pt", workspace["model"], workspace["tokenizer"], model_config=config)
        return [f"--checkpoint={tmp / 'mismatch.pt'}", f"--images={images}"]
    if name == "unreadable image":
        (tmp / "broken.png").write_bytes(b"not a png")
        return [f"--checkpoint={ckpt}", f"--images={tmp / 'broken.png'}"]
    if name == "empty folder":
        (tmp / "empty").mkdir()
        return [f"--checkpoint={ckpt}", f"--images={tmp / 'empty'}"]
    if name == "query of unknown words":
        return [f"--checkpoint={ckpt}", f"--images={images}", "--query=zebra giraffe"]
    raise ValueError(name)


@pytest.mark.parametrize("case", ["missing checkpoint", "text file as checkpoint", "checkpoint of another kind",
                                  "model_config not matching the weights", "unreadable image", "empty folder",
                                  "query of unknown words"])
def test_errors_are_one_line_with_exit_status_2(case, workspace, tmp_path):
    result = run_sample(*make_error_case(case, workspace, tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""


# -- the decoders, on a decoder whose probabilities are set by hand ----------------------

PAD, BOS, EOS, A, B = range(5)


class TableDecoderModel:
    """The next-token distribution depends only on the last token: after <bos> A 0.6, B 0.4; after A <eos> 0.45,
    A 0.3, B 0.25; after B <eos> 0.9, A 0.1. Greedy writes "A <eos>" (p = 0.27), the likelier caption is
    "B <eos>" (p = 0.36)."""

    def __init__(self, max_caption_len=5):
        self.cfg = ModelConfig(vocab_size=5, max_caption_len=max_caption_len, pad_id=PAD)
        probs = torch.full((5, 5), 1e-9)
        probs[BOS, A], probs[BOS, B] = 0.6, 0.4
        probs[A, EOS], probs[A, A], probs[A, B] = 0.45, 0.3, 0.25
        probs[B, EOS], probs[B, A] = 0.9, 0.1
        probs[EOS, PAD] = probs[PAD, PAD] = 1.0
        self.table = probs.log()

    def caption_decoder(self, z, tokens):
        return self.table[tokens]  # (B, T, V) log-probabilities as logits


def test_beam_search_finds_the_likelier_caption_that_greedy_misses():
    model, z = TableDecoderModel(), torch.zeros(2, 1)
    assert beam_search(model, z, BOS, EOS, beam_size=1)[:, :3].tolist() == [[BOS, A, EOS]] * 2  # = greedy
    assert beam_search(model, z, BOS, EOS, beam_size=2)[:, :3].tolist() == [[BOS, B, EOS]] * 2


def test_beam_search_of_size_one_is_the_models_greedy_decoding(workspace):
    model, tokenizer = workspace["model"], workspace["tokenizer"]
    images = torch.rand(3, 3, 16, 16)
    greedy = model.generate_captions(images, tokenizer.BOS, tokenizer.EOS)
    beam = beam_search(model, model.image_encoder(images), tokenizer.BOS, tokenizer.EOS, beam_size=1)
    assert [tokenizer.decode(r) for r in beam.tolist()] == [tokenizer.decode(r) for r in greedy.tolist()]


def test_sampling_follows_the_probabilities_and_the_seed():
    model, z = TableDecoderModel(), torch.zeros(2000, 1)
    def draw(seed, t):
        return sample_captions(model, z, BOS, EOS, t, torch.Generator().manual_seed(seed))

    first = draw(0, 1.0)[:, 1]
    assert (first == B).float().mean().item() == pytest.approx(0.4, abs=0.04)
    assert torch.equal(draw(0, 1.0), draw(0, 1.0))
    assert not torch.equal(draw(0, 1.0), draw(1, 1.0))
    assert (draw(0, 1e-3)[:, 1] == A).all()  # a temperature near 0 is greedy
