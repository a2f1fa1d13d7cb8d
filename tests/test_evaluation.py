"""Each measure of evaluation.py on hand-made cases whose answer is known, and the entry point on a tiny model."""
import math

import pytest
import torch

from evaluation import (
    VAL_MEASURES,
    baseline_split,
    batch_standard_error,
    bleu4,
    caption_quality,
    cider_d,
    evaluate_split,
    grounded_accuracy,
    mean_image,
    reconstruction_quality,
    retrieval_metrics,
    ssim,
)
from model_architecture_large import ModelConfig, MultimodalModel
from tokenizer import CaptionTokenizer


def distinct_captions(n):
    return torch.arange(n)[:, None].repeat(1, 3)  # (n, 3): every caption different


# -- retrieval --------------------------------------------------------------------

def test_perfect_retrieval_has_recall_one_and_median_rank_one():
    emb = torch.randn(20, 8)
    metrics = retrieval_metrics(emb, emb * 3.0, distinct_captions(20))  # scale: embeddings are normalised
    for direction in ("i2t", "t2i"):
        assert metrics[f"{direction}_r1"] == 1.0
        assert metrics[f"{direction}_r10"] == 1.0
        assert metrics[f"{direction}_median_rank"] == 1.0


def test_ranks_placed_by_hand_give_their_recalls_and_median():
    # text embeddings are one-hot, so logits[i, j] = scores[i, j] / |row i|; every row is a permutation of
    # 1..N (same norm), so the order in rows and columns is that of `scores`. N is odd so that the map
    # i -> 2i mod N is a permutation: the true match of query i then sits at rank (N - i) mod N, i.e. the
    # 0-based ranks are 0..N-1 once each in both directions.
    N = 11
    i, j = torch.arange(N)[:, None], torch.arange(N)[None, :]
    scores = (N - (j - 2 * i) % N).float()
    metrics = retrieval_metrics(scores, torch.eye(N), distinct_captions(N))
    for direction in ("i2t", "t2i"):
        assert metrics[f"{direction}_r1"] == pytest.approx(1 / N)
        assert metrics[f"{direction}_r5"] == pytest.approx(5 / N)
        assert metrics[f"{direction}_r10"] == pytest.approx(10 / N)
        assert metrics[f"{direction}_median_rank"] == 6.0  # median of ranks 0..10 is 5, + 1


def test_reversed_ranking_puts_every_truth_last():
    N = 12
    i, j = torch.arange(N)[:, None], torch.arange(N)[None, :]
    scores = ((j - i) % N + 1).float()  # the true match has the lowest score of its row and of its column
    metrics = retrieval_metrics(scores, torch.eye(N), distinct_captions(N))
    assert metrics["i2t_r10"] == 0.0 and metrics["t2i_r10"] == 0.0
    assert metrics["i2t_median_rank"] == N and metrics["t2i_median_rank"] == N


def test_median_rank_of_an_even_count_averages_the_middle_two_like_numpy():
    # i2t 0-based ranks 0, 0, 3, 3: numpy's median 1.5 -> floor + 1 = 2 (torch.median would give 1)
    scores = torch.tensor([[4.0, 3, 2, 1], [3, 4, 1, 2], [2, 3, 1, 4], [2, 3, 4, 1]])
    metrics = retrieval_metrics(scores, torch.eye(4), distinct_captions(4))
    assert metrics["i2t_r1"] == 0.5
    assert metrics["i2t_median_rank"] == 2.0


def test_an_identical_caption_counts_as_a_hit():
    captions = torch.tensor([[1, 5, 2], [1, 5, 2], [1, 6, 2]])  # items 0 and 1 share their caption
    images = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])  # images 0 and 1 each point at the other's text
    metrics = retrieval_metrics(images, torch.eye(3), captions)
    assert metrics["i2t_r1"] == 1.0 and metrics["t2i_r1"] == 1.0
    distinct = retrieval_metrics(images, torch.eye(3), distinct_captions(3))
    assert distinct["i2t_r1"] == pytest.approx(1 / 3)  # without the shared caption they are misses


# -- caption quality --------------------------------------------------------------

def test_bleu4_of_a_hand_counted_pair():
    # clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty
    assert bleu4(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx((1 / 12) ** 0.25, abs=1e-6)
    assert bleu4(["a ship on the sea"], ["a ship on the sea"]) == pytest.approx(1.0)


# Reference values from pycocoevalcap 1.2 (pip wheel), pycocoevalcap/cider/cider.py `Cider().compute_score(gts, res)`
# with gts = {i: [reference]}, res = {i: [candidate]}: its cider_scorer.py is the CIDEr-D of coco-caption and of
# vrama91/cider's pyciderevalcap/ciderD (df_mode="corpus"): clipping, sigma=6 length penalty, x10.
CIDER_CASES = [
    (["a large ship on the left", "a small tree in the center", "an engraving of a church", "the the the the",
      "a castle on a hill under a crescent moon", "birds"],
     ["a large ship on the left under a crescent moon", "a small tree on the right",
      "an engraving of a small church in the center", "a windmill on the right",
      "a castle on a hill under a crescent moon", "birds flying overhead"],
     4.156356279124561),  # per caption: 6.2561, 3.0652, 4.1372, 0.1143, 10.0, 1.3654
    (["an engraving of a large ship on the left", "an engraving of a small tree , a church", "",
      "an engraving of a castle on a hill under a crescent moon"],
     ["an engraving of a large ship on the left under a crescent moon",
      "an engraving of a small tree on the right , a small church in the center", "an engraving of a windmill",
      "an engraving of a castle on a hill under a crescent moon"],
     4.728110681437075),  # per caption: 6.6844, 2.2281, 0.0, 10.0; "an engraving of" is in every reference
]


@pytest.mark.parametrize("candidates, references, expected", CIDER_CASES)
def test_cider_d_matches_coco_caption(candidates, references, expected):
    assert cider_d(candidates, references) == pytest.approx(expected, rel=1e-12)


def test_cider_d_is_ten_for_exact_captions_and_zero_for_disjoint_ones():
    refs = ["a ship at sea", "a tree on a hill", "a church by the sea"]
    assert cider_d(refs, refs) == pytest.approx(10.0)
    # "a church" has no 3- or 4-grams, so it scores 5 even when exact: (5 + 10) / 2
    assert cider_d(["a church", "a ship at sea"], ["a church", "a ship at sea"]) == pytest.approx(7.5)
    assert cider_d(["birds", "moon", "sun"], refs) == 0.0


def test_caption_quality_is_bleu4_and_cider_d_of_the_same_captions():
    candidates = ["an engraving of a ship at sea", "a tree on a hill by the church", "a windmill"]
    references = ["an engraving of a ship at sea", "a tree on a hill near a church", "a castle"]
    quality = caption_quality(candidates, references)
    assert quality == {"bleu4": bleu4(candidates, references), "cider_d": cider_d(candidates, references)}
    assert 0 < quality["bleu4"] < 1 and 0 < quality["cider_d"] < 10  # partly right: neither extreme
    assert caption_quality(references, references)["bleu4"] == pytest.approx(1.0)


# -- reconstructions --------------------------------------------------------------

def test_identical_images_have_ssim_one():
    images = torch.rand(2, 3, 16, 16)
    assert reconstruction_quality(images, images)["ssim"].tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("channels, size", [(3, 64), (1, 16), (3, 11)])
def test_ssim_matches_torchmetrics_per_image(channels, size):
    from torchmetrics.functional.image import structural_similarity_index_measure

    torch.manual_seed(0)
    images = torch.rand(6, channels, size, size)
    # from nearly the same image to unrelated noise, so the values span the range
    recon = (images + torch.linspace(0.02, 1.0, 6).view(6, 1, 1, 1) * torch.randn_like(images)).clamp(0, 1)
    expected = structural_similarity_index_measure(recon, images, data_range=1.0, reduction="none", kernel_size=11)
    assert expected.max() - expected.min() > 0.5
    assert ssim(recon, images).tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_psnr_matches_torchmetrics_per_image():
    from torchmetrics.functional.image import peak_signal_noise_ratio

    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    recon = (images + torch.linspace(0.01, 0.5, 4).view(4, 1, 1, 1) * torch.randn_like(images)).clamp(0, 1)
    expected = peak_signal_noise_ratio(recon, images, data_range=1.0, reduction="none", dim=(1, 2, 3))
    assert reconstruction_quality(recon, images)["psnr"].tolist() == pytest.approx(expected.tolist(), rel=1e-5)


def test_ssim_of_an_image_against_its_negative_is_below_zero():
    images = torch.rand(2, 3, 16, 16)
    assert (ssim(1 - images, images) < 0).all()


def test_psnr_of_a_known_mse_per_image():
    images = torch.rand(2, 3, 16, 16) * 0.6 + 0.2  # in [0.2, 0.8], so the offsets below are not clamped
    recon = images + torch.tensor([0.1, 0.05]).view(2, 1, 1, 1)  # mse 0.01 and 0.0025
    psnr = reconstruction_quality(recon, images)["psnr"]
    assert psnr.tolist() == pytest.approx([10 * math.log10(1 / 0.01), 10 * math.log10(1 / 0.0025)], abs=1e-3)


# -- grounded caption accuracy ----------------------------------------------------

def stub_matcher(caption, truth):
    words = caption.split()
    return {"object": truth["object"] in words, "count": truth["count"] in words,
            "position": truth["position"] in words}


def test_grounded_accuracy_averages_over_items_with_a_truth():
    captions = ["two ships on the left", "a tree in the center", "whatever", "one church right"]
    truths = [{"object": "ships", "count": "two", "position": "left"},
              {"object": "tree", "count": "three", "position": "left"},
              None,  # no truth: not counted
              {"object": "mill", "count": "one", "position": "right"}]
    result = grounded_accuracy(captions, truths, matcher=stub_matcher)
    assert result == pytest.approx({"grounded_object": 2 / 3, "grounded_count": 2 / 3, "grounded_position": 2 / 3})


def test_grounded_accuracy_counts_a_key_only_where_the_matcher_judged_it():
    def matcher(caption, truth):
        return {"object": caption == truth["object"], **({"technique": True} if "technique" in truth else {})}
    result = grounded_accuracy(["ship", "tree", "mill"], [{"object": "ship", "technique": "woodcut"},
                                                          {"object": "oak"}, {"object": "mill"}], matcher=matcher)
    assert result == pytest.approx({"grounded_object": 2 / 3, "grounded_technique": 1.0})


def test_grounded_accuracy_is_empty_without_truths():
    assert grounded_accuracy(["a ship"], [None], matcher=stub_matcher) == {}


# -- the entry point --------------------------------------------------------------

# what evaluate_split measures without ground truth: the registry's measures but the grounded ones and the probes
EXPECTED_KEYS = {m for m in VAL_MEASURES if not m.startswith(("grounded_", "probe_"))}


def tiny_model_and_split(n=6):
    torch.manual_seed(0)
    tokenizer, _ = CaptionTokenizer.build(["a ship at sea", "a tree on a hill", "a church by the sea"])
    model = MultimodalModel(ModelConfig.small(width=32, num_heads=2, latent_dim=16, image_size=16, patch_size=8,
                                              vocab_size=len(tokenizer), max_caption_len=12))
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8)
    texts = ["a ship at sea", "a tree on a hill", "a church by the sea"] * (n // 3)
    tokens = torch.tensor([tokenizer.encode(t, 12)[0] for t in texts])
    return model, tokenizer, images, tokens


def test_evaluate_split_returns_every_measure_and_does_not_depend_on_batching():
    model, tokenizer, images, tokens = tiny_model_and_split()
    model.train()
    metrics, captions = evaluate_split(model, images, tokens, tokenizer, batch_size=4, return_captions=True)
    assert set(metrics) == EXPECTED_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert model.training  # the caller's mode is restored
    assert len(captions) == len(images) and all(isinstance(c, str) for c in captions)
    whole = evaluate_split(model, images, tokens, tokenizer, batch_size=100)
    assert whole == pytest.approx(metrics, abs=1e-5)


def test_evaluate_split_adds_grounded_accuracy_only_when_truths_exist():
    model, tokenizer, images, tokens = tiny_model_and_split(3)
    metrics = evaluate_split(model, images, tokens, tokenizer, truths=[None, None, None])
    assert set(metrics) == EXPECTED_KEYS


def test_evaluate_split_is_one_pass_whose_outputs_the_caller_sees():
    model, tokenizer, images, tokens = tiny_model_and_split()
    seen = []
    evaluate_split(model, images, tokens, tokenizer, batch_size=4,
                   on_batch=lambda out, batch: seen.append((len(batch), float(out["loss_caption"]))))
    assert [size for size, _ in seen] == [4, 2]  # every item once, in batches of batch_size
    model.eval()
    with torch.no_grad():
        expected = model(images[:4].float() / 255, tokens[:4])["loss_caption"].item()
    assert seen[0][1] == pytest.approx(expected)


# -- the baseline -----------------------------------------------------------------

def test_mean_image_is_the_pixel_mean_whatever_the_batch_size():
    images = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8)
    expected = (images.float() / 255).mean(dim=0)
    assert torch.allclose(mean_image(images, batch_size=3), expected, atol=1e-6)
    assert torch.allclose(mean_image(images), expected, atol=1e-6)


def test_baseline_reconstructs_every_image_as_the_reference_image():
    _, tokenizer, images, tokens = tiny_model_and_split()
    reference = torch.full((3, 16, 16), 0.25)
    result = baseline_split(images, tokens, tokenizer, reference_image=reference)
    expected = reconstruction_quality(reference.expand(len(images), -1, -1, -1), images.float() / 255)
    assert result["psnr"] == pytest.approx(expected["psnr"].mean().item())
    assert result["ssim"] == pytest.approx(expected["ssim"].mean().item())
    default = baseline_split(images, tokens, tokenizer)  # the split's own mean image
    own = reconstruction_quality(mean_image(images).expand(len(images), -1, -1, -1), images.float() / 255)
    assert default["psnr"] == pytest.approx(own["psnr"].mean().item())


def test_baseline_gives_each_image_the_caption_of_another_item():
    texts = ["a ship on the left .", "two trees on the right ."]
    tokenizer, _ = CaptionTokenizer.build(texts)
    tokens = torch.tensor([tokenizer.encode(t, 12)[0] for t in texts])
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    truths = [{"main": {"kind": "ship", "count": 1, "position": "left"}},
              {"main": {"kind": "tree", "count": 2, "position": "right"}}]
    result = baseline_split(images, tokens, tokenizer, truths, latent_dim=8)
    swapped = caption_quality(texts[::-1], texts)
    assert result["bleu4"] == pytest.approx(swapped["bleu4"]) and result["cider_d"] == pytest.approx(swapped["cider_d"])
    assert result["grounded_object"] == 0.0  # neither image gets its own caption...
    assert grounded_accuracy(texts, truths)["grounded_object"] == 1.0  # ...which would be right for both


def test_the_caption_baseline_is_the_mean_over_the_other_items_captions_whatever_latent_dim_or_seed():
    """Five items, two ships and three trees: another item's caption names a ship's kind for 1 of its 4 others
    and a tree's for 2 of 4, so a model that learned nothing names the main object right for (2 x 1/4 + 3 x 2/4)
    / 5 = 0.4 of the images. On 5 items the evenly spread offsets are all four: the exact mean."""
    kinds = ["ship", "ship", "tree", "tree", "tree"]
    texts = [f"a {kind} on the left ." for kind in kinds]
    tokenizer, _ = CaptionTokenizer.build(texts)
    tokens = torch.tensor([tokenizer.encode(t, 12)[0] for t in texts])
    images = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    truths = [{"main": {"kind": kind, "count": 1, "position": "left"}} for kind in kinds]
    result = baseline_split(images, tokens, tokenizer, truths, latent_dim=8)
    assert result["grounded_object"] == pytest.approx(0.4)
    # count and position are judged on the mention of the right kind: every caption says "a ... on the left",
    # right for every image, so they are right exactly where the object is
    assert result["grounded_count"] == result["grounded_position"] == pytest.approx(0.4)
    other = baseline_split(images, tokens, tokenizer, truths, latent_dim=32, seed=7)
    caption_names = ("bleu4", "cider_d", "grounded_object", "grounded_count", "grounded_position")
    assert {k: other[k] for k in caption_names} == {k: result[k] for k in caption_names}


def test_baseline_retrieval_is_at_chance_and_the_same_for_the_same_seed():
    n = 400
    texts = [f"ship number{i}" for i in range(n)]
    tokenizer, _ = CaptionTokenizer.build(texts)
    tokens = torch.tensor([tokenizer.encode(t, 6)[0] for t in texts])
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    result = baseline_split(images, tokens, tokenizer, latent_dim=16, seed=3)
    for direction in ("i2t", "t2i"):
        assert result[f"{direction}_r10"] < 0.06  # chance: 10 / 400 = 0.025
        assert 130 < result[f"{direction}_median_rank"] < 270  # chance: about 200
    assert baseline_split(images, tokens, tokenizer, latent_dim=16, seed=3) == result


def test_baseline_of_a_single_item_has_no_caption_measures():
    _, tokenizer, images, tokens = tiny_model_and_split(3)
    result = baseline_split(images[:1], tokens[:1], tokenizer, reference_image=torch.full((3, 16, 16), 0.5))
    assert result["i2t_r1"] == 1.0 and math.isfinite(result["psnr"])
    assert "bleu4" not in result and "cider_d" not in result


def test_the_standard_error_from_equal_batches_is_their_std_over_the_root_of_their_count():
    means = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    expected = means.std().item() / 2  # std with n - 1, over sqrt(4)
    assert math.isclose(batch_standard_error(means, [64] * 4), expected, rel_tol=1e-9)
    assert batch_standard_error(torch.full((5,), 2.5), [64] * 5) == 0.0  # batches that agree: no noise
    assert math.isnan(batch_standard_error([1.0], [64]))  # one batch says nothing about the spread


def test_a_small_last_batch_counts_for_less_in_the_standard_error():
    even = batch_standard_error([1.0, 1.0, 1.0, 5.0], [64, 64, 64, 64])
    small_last = batch_standard_error([1.0, 1.0, 1.0, 5.0], [64, 64, 64, 2])
    assert small_last < even / 5
