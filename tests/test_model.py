import math

import pytest
import torch
import torch.nn.functional as F

from model_architecture_large import ModelConfig, MultimodalModel, contrastive_loss

SEED_PARAMETERS = 85_000_000  # the seed's model
SEED_VOCAB = 1266  # the seed's tokenizer size


def captions_batch(batch, length, vocab, lengths):
    captions = torch.zeros(batch, length, dtype=torch.long)
    for i, n in enumerate(lengths):
        captions[i, 0] = 1  # <bos>
        captions[i, 1:n + 1] = torch.randint(4, vocab, (n,))
        captions[i, n + 1] = 2  # <eos>
    return captions


def test_default_model_has_the_seeds_parameter_count_within_ten_percent():
    with torch.device("meta"):
        model = MultimodalModel(ModelConfig(vocab_size=SEED_VOCAB))
    assert abs(model.num_parameters() - SEED_PARAMETERS) <= 0.1 * SEED_PARAMETERS


def test_small_model_is_about_a_million_parameters():
    with torch.device("meta"):
        model = MultimodalModel(ModelConfig.small(vocab_size=100, image_size=64))
    assert 0.5e6 <= model.num_parameters() <= 2.5e6


@pytest.fixture
def small_batch():
    torch.manual_seed(0)
    cfg = ModelConfig.small(vocab_size=50, image_size=32, max_caption_len=12)
    model = MultimodalModel(cfg)
    images = torch.rand(4, 3, 32, 32)
    captions = captions_batch(4, 12, 50, lengths=[3, 5, 10, 1])
    return model, images, captions


def test_forward_returns_shapes_and_finite_losses(small_batch):
    model, images, captions = small_batch
    out = model(images, captions)
    assert out["z"].shape == (4, model.cfg.latent_dim)
    assert out["recon"].shape == images.shape
    assert 0 <= out["recon"].min() and out["recon"].max() <= 1
    assert out["logits"].shape == (4, 11, 50)
    assert torch.equal(out["targets"], captions[:, 1:])
    for name in ("loss_image", "loss_caption", "loss_alignment"):
        assert torch.isfinite(out[name]) and out[name].dim() == 0


def test_loss_caption_ignores_padding(small_batch):
    model, images, captions = small_batch
    out = model(images, captions)
    logits, targets = out["logits"], out["targets"]
    keep = targets != 0
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert out["loss_caption"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_caption_decoder_is_causal(small_batch):
    model, images, captions = small_batch
    model.eval()
    changed = captions.clone()
    changed[:, 6:] = 7  # later tokens must not change earlier predictions
    a = model(images, captions)["logits"][:, :5]
    b = model(images, changed)["logits"][:, :5]
    assert torch.allclose(a, b, atol=1e-5)


def test_contrastive_loss_does_not_treat_identical_captions_as_negatives():
    e = torch.eye(3)
    captions = torch.tensor([[1, 5, 2], [1, 5, 2], [1, 6, 2]])  # items 0 and 1 share a caption
    matched = contrastive_loss(e, e, captions, logit_scale=20.0)
    swapped = contrastive_loss(e, e[[1, 0, 2]], captions, logit_scale=20.0)  # swap within the shared caption
    assert swapped.item() == pytest.approx(matched.item(), rel=1e-6)
    distinct = torch.tensor([[1, 5, 2], [1, 7, 2], [1, 6, 2]])
    assert contrastive_loss(e, e[[1, 0, 2]], distinct, 20.0) > contrastive_loss(e, e, distinct, 20.0) + 1


def test_contrastive_loss_is_near_zero_for_perfectly_aligned_distinct_pairs_and_ln_b_at_chance():
    e = torch.eye(4)
    captions = torch.arange(4).view(4, 1)
    assert contrastive_loss(e, e, captions, logit_scale=100.0).item() < 1e-6
    assert contrastive_loss(e, torch.ones(4, 4), captions, 100.0).item() == pytest.approx(math.log(4), rel=1e-5)


def test_temperature_is_clamped(small_batch):
    model, images, captions = small_batch
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) >> 100
    high = model(images, captions)["loss_alignment"]
    with torch.no_grad():
        model.logit_scale.fill_(math.log(model.cfg.max_logit_scale))
    assert model(images, captions)["loss_alignment"].item() == pytest.approx(high.item(), rel=1e-5)


def test_generate_captions_starts_with_bos_and_pads_after_eos(small_batch):
    model, images, _ = small_batch
    tokens = model.generate_captions(images, bos_id=1, eos_id=2, max_len=8)
    assert tokens.shape[0] == 4 and 2 <= tokens.shape[1] <= 8
    assert (tokens[:, 0] == 1).all()
    for row in tokens.tolist():
        if 2 in row:
            assert all(t == 0 for t in row[row.index(2) + 1:])
