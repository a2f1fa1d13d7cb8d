"""probes.py: linear probes on hand-made latents whose answer is known."""
import pytest
import torch

from probes import (
    RIDGE_FACTORS,
    LatentProbe,
    LatentReference,
    Ridge,
    content_words,
    ledoit_wolf,
    untrained_levels,
    word_aucs,
)
from tokenizer import CaptionTokenizer

COLOURS = ("red", "blue", "green", "grey", "black")
KINDS = ("tent", "ship", "palm", "house", "bridge")


def items(n, seed):
    """n items of 5 classes: a caption naming the class's colour and kind, a truth with them."""
    classes = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(seed))
    captions = [f"The {COLOURS[c]} {KINDS[c]} of the print." for c in classes.tolist()]
    truths = [{"main": {"kind": KINDS[c], "count": 1 + c % 2, "position": "left"}, "technique": "etching",
               "time": COLOURS[c]} for c in classes.tolist()]
    return classes, captions, truths


@pytest.fixture(scope="module")
def probe():
    fit_classes, fit_captions, fit_truths = items(600, seed=0)
    val_classes, val_captions, val_truths = items(300, seed=1)
    tokenizer, _ = CaptionTokenizer.build(fit_captions)
    encode = lambda captions: torch.tensor([tokenizer.encode(c, 10)[0] for c in captions])  # noqa: E731
    return (LatentProbe(encode(fit_captions), fit_truths, encode(val_captions), val_truths, tokenizer),
            fit_classes, val_classes)


def latents(classes, signal, seed, dim=32):
    """z holding the class (one-hot times signal in its first 5 dimensions) plus unit noise in all of them."""
    z = torch.randn(len(classes), dim, generator=torch.Generator().manual_seed(seed))
    z[:, :5] += signal * torch.nn.functional.one_hot(classes, 5)
    return z


def test_the_words_are_the_content_words_of_the_captions(probe):
    # "the", "of" (stop words), "." (punctuation) and the special tokens are left out
    assert sorted(probe[0].words) == sorted(COLOURS + KINDS)


def test_content_words_leave_out_a_word_in_every_caption():
    tokenizer, _ = CaptionTokenizer.build(["a red tent engraving", "a blue ship engraving"])
    tokens = torch.tensor([tokenizer.encode(c, 8)[0] for c in ["a red tent engraving", "a blue ship engraving"]])
    assert {tokenizer.itos[i] for i in content_words(tokens, tokenizer)} == {"red", "tent", "blue", "ship"}


def test_a_z_that_holds_the_class_scores_about_one_on_every_field_it_decides(probe):
    probe, fit, val = probe
    scores = probe.score(latents(fit, 6.0, seed=2), latents(val, 6.0, seed=3))
    for name in ("probe_kind", "probe_count", "probe_time"):
        assert scores[name] > 0.97, name
    assert scores["probe_word_auc"] > 0.97
    chance = probe.chance()
    assert chance["probe_word_auc"] == 0.5 and 0.15 < chance["probe_kind"] < 0.3  # five classes, the largest's share
    assert scores["probe_position"] == chance["probe_position"] == 1.0  # one class: nothing to learn


def test_a_random_z_scores_about_chance(probe):
    probe, fit, val = probe
    scores, chance = probe.score(latents(fit, 0.0, seed=4), latents(val, 0.0, seed=5)), probe.chance()
    assert abs(scores["probe_word_auc"] - 0.5) < 3 * scores["probe_word_auc_se"] < 0.1
    for name in ("probe_kind", "probe_count", "probe_time"):
        n = 300
        p = chance[name]
        assert scores[name] - p < 3 * (p * (1 - p) / n) ** 0.5, name  # never clearly above its majority share


def test_a_constant_z_blank_images_scores_exactly_chance_with_no_spread(probe):
    probe, fit, val = probe
    scores = probe.score(torch.ones(len(fit), 32), torch.ones(len(val), 32))
    assert scores["probe_word_auc"] == 0.5 and scores["probe_word_auc_se"] == 0.0
    assert {k: v for k, v in scores.items() if k in probe.chance()} == probe.chance()


def test_the_probes_are_deterministic(probe):
    probe, fit, val = probe
    z_fit, z_val = latents(fit, 1.0, seed=6), latents(val, 1.0, seed=7)
    assert probe.score(z_fit, z_val) == probe.score(z_fit, z_val)


def test_word_auc_of_a_hand_counted_case():
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)  # word 3: in every caption
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.3, 0.0], [0.2, 0.5, 0.0], [0.1, 0.8, 0.0]])
    auc, mean, _ = word_aucs(scores, present)
    # word 1: every present item above every absent one; word 2: 1 of the 4 (present, absent) pairs in order
    assert auc[:2].tolist() == [1.0, 0.25] and auc[2].isnan() and mean == 0.625


def test_word_auc_is_torchmetrics_auroc_and_its_error_the_spread_over_random_pairings():
    from torchmetrics.functional.classification import binary_auroc
    g = torch.Generator().manual_seed(8)
    present = torch.rand(200, 6, generator=g) < torch.tensor([0.1, 0.3, 0.5, 0.5, 0.7, 0.2])
    present[:, 3] = present[:, 2]  # two words always together: their AUCs move together, so the mean's error grows
    scores = torch.randn(200, 6, generator=g) + present.float()
    scores[:, 3] = scores[:, 2]
    scores[:5, 0] = scores[5, 0]  # ties count half
    auc, mean, se = word_aucs(scores, present)
    for k in range(6):
        assert auc[k].item() == pytest.approx(binary_auroc(scores[:, k], present[:, k].long()).item(), abs=1e-6)
    shuffled = [word_aucs(scores, present[torch.randperm(200, generator=g)])[1] for _ in range(300)]
    spread = torch.tensor(shuffled).std().item()
    assert se == pytest.approx(spread, rel=0.12)  # 300 draws estimate a spread within about 4%
    assert torch.tensor(shuffled).mean().item() == pytest.approx(0.5, abs=0.003)


def test_the_penalty_is_chosen_on_held_out_items():
    g = torch.Generator().manual_seed(9)
    z = torch.randn(400, 20, generator=g)
    y = torch.cat([z[:, :1] * 3, torch.randn(400, 1, generator=g)], dim=1)  # a clean signal and pure noise
    ridge = Ridge(z, y, {"signal": [0], "noise": [1]})
    assert ridge.factors["signal"] == RIDGE_FACTORS[0] and ridge.factors["noise"] >= 10  # noise is shrunk away


def test_a_word_in_few_validation_captions_is_not_named_best_though_its_auc_is_highest():
    g = torch.Generator().manual_seed(10)
    fit_classes, fit_captions, _ = items(600, seed=11)
    val_classes, val_captions, _ = items(300, seed=12)
    fit_rare = torch.rand(600, generator=g) < 0.2
    val_rare = torch.arange(300) < 2  # in 2 validation captions: its AUC is luck as much as knowledge
    tag = lambda captions, rare: [c + " unicorn" * r for c, r in zip(captions, rare.tolist())]  # noqa: E731
    tokenizer, _ = CaptionTokenizer.build(tag(fit_captions, fit_rare))
    encode = lambda captions: torch.tensor([tokenizer.encode(c, 12)[0] for c in captions])  # noqa: E731
    probe = LatentProbe(encode(tag(fit_captions, fit_rare)), None, encode(tag(val_captions, val_rare)), None, tokenizer)
    z_fit, z_val = latents(fit_classes, 1.0, seed=13), latents(val_classes, 1.0, seed=14)
    z_fit[:, 5], z_val[:, 5] = 6.0 * fit_rare, 6.0 * val_rare  # z knows the rare word perfectly
    scores = probe.score(z_fit, z_val)
    assert "unicorn" in probe.words and "unicorn" not in scores["probe_words_best"] + scores["probe_words_worst"]
    assert "probe_kind" not in scores and "probe_kind" not in probe.chance()  # no ground truth: words only



def test_the_untrained_levels_are_logged_beside_chance_for_the_probes_chance_knows():
    chance = {"probe_word_auc": 0.5, "probe_kind": 0.03}
    untrained = {"probe_word_auc": 0.61, "probe_kind": 0.19, "probe_word_auc_se": 0.01, "probe_words_best": "sun 0.9"}
    assert untrained_levels(chance, untrained) == {"probe_word_auc_untrained": 0.61, "probe_kind_untrained": 0.19}


# --- novelty: does an image look like anything the model was trained on? -----------------------------------------


def test_ledoit_wolf_matches_sklearns_formula_on_a_hand_checked_case():
    # 3 items in 2 dimensions: x = z - mean = [[-1, -1], [0, 0], [1, 1]], cov = [[2/3, 2/3], [2/3, 2/3]], mu = 2/3,
    # delta = ((0)^2 + (2/3)^2 * 2 + 0) / 2 = 4/9; beta = (sum ||x_k||^4 / n - ||cov||^2) / n / d
    # = ((4 + 0 + 4) / 3 - 16/9) / 3 / 2 = (8/3 - 16/9) / 6 = 4/27; shrink = (4/27) / (4/9) = 1/3
    z = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    mean, cov = ledoit_wolf(z)
    assert torch.allclose(mean, torch.tensor([1.0, 2.0], dtype=torch.float64))
    expected = (2 / 3) * torch.tensor([[2 / 3, 2 / 3], [2 / 3, 2 / 3]], dtype=torch.float64) \
        + (1 / 3) * (2 / 3) * torch.eye(2, dtype=torch.float64)
    assert torch.allclose(cov, expected)


def test_a_z_from_the_training_distribution_is_familiar_and_a_far_one_is_not():
    g = torch.Generator().manual_seed(0)
    scale = torch.linspace(0.1, 3.0, 16)
    train, val = torch.randn(2000, 16, generator=g) * scale, torch.randn(500, 16, generator=g) * scale
    reference = LatentReference.fit(train, val)
    fresh = torch.randn(1000, 16, generator=g) * scale
    assert 0.0 < reference.unfamiliar(fresh).float().mean().item() < 0.04  # about 1% by construction
    # 3.0 along the dimension whose spread is 0.1 is far out (the shrunk covariance widens it a little), though it
    # is one standard deviation along the widest one
    odd = torch.zeros(1, 16)
    odd[0, 0] = 3.0
    assert reference.unfamiliar(odd).item()
    assert not reference.unfamiliar(torch.zeros(1, 16)).item()


def test_the_reference_survives_a_round_trip_through_its_state_dict():
    g = torch.Generator().manual_seed(1)
    reference = LatentReference.fit(torch.randn(300, 8, generator=g), torch.randn(100, 8, generator=g))
    again = LatentReference.from_state_dict(reference.state_dict())
    z = torch.randn(20, 8, generator=g)
    assert torch.allclose(again.distance(z), reference.distance(z), rtol=1e-5)
    assert again.threshold == reference.threshold


def test_a_collapsed_or_non_finite_z_gives_a_reference_or_none_and_never_an_error():
    same = torch.ones(50, 8)  # every image on one point: no spread at all
    reference = LatentReference.fit(same, same[:10])
    assert reference.distance(same[:3]).max().item() < 1e-3 and not reference.unfamiliar(same[:3]).any()
    assert reference.unfamiliar(same[:1] + 0.1).item()
    nan = torch.full((50, 8), float("nan"))
    assert LatentReference.fit(nan, nan) is None
