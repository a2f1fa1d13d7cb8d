import math

import pytest
import torch
import torch.nn.functional as F

from model_architecture_large import LayerNorm, ModelConfig, MultimodalModel, caption_loss, contrastive_loss

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


def test_the_caption_lead_counts_lead_weight_times_in_a_mean_per_token():
    # two captions: "w w . x <eos>" and "y <eos> <pad> <pad> <pad>" (no '.': all lead); '.' is token 5, pad 0
    targets = torch.tensor([[7, 7, 5, 8, 2], [9, 2, 0, 0, 0]])
    logits = torch.randn(2, 5, 12)
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    lead = ce[0, :3].sum() + ce[1, :2].sum()  # the first sentence, its '.' included; the whole second caption
    expected = (3 * lead + ce[0, 3:].sum()) / (3 * 5 + 2)
    assert caption_loss(logits, targets, 0, 3.0, 5).item() == pytest.approx(expected.item(), rel=1e-6)
    plain = F.cross_entropy(logits[targets != 0], targets[targets != 0])
    for weight, end in ((1.0, 5), (3.0, -1)):  # weight 1, or no lead end: the plain mean
        assert caption_loss(logits, targets, 0, weight, end).item() == pytest.approx(plain.item(), rel=1e-6)
    # a caption with no '.' is all lead: weighting it alone changes nothing
    alone = caption_loss(logits[1:], targets[1:], 0, 3.0, 5)
    assert alone.item() == pytest.approx(F.cross_entropy(logits[1, :2], targets[1, :2]).item(), rel=1e-6)


def test_the_model_weighs_the_lead_only_when_asked(small_batch):
    model, images, captions = small_batch
    dot = int(captions[2, 3])  # the third caption's third word ends its lead
    weighted = MultimodalModel(ModelConfig.small(vocab_size=50, image_size=32, max_caption_len=12,
                                                 caption_lead_weight=10.0, lead_end_id=dot))
    weighted.load_state_dict(model.state_dict())
    out, lead = model(images, captions), weighted(images, captions)["loss_caption"]
    plain = out["loss_caption"]
    assert lead.item() == pytest.approx(caption_loss(out["logits"], out["targets"], 0, 10.0, dot).item(), rel=1e-5)
    assert lead.item() != pytest.approx(plain.item(), rel=1e-3)
    with pytest.raises(ValueError, match="caption_lead_weight"):
        ModelConfig.small(caption_lead_weight=0.0)


def test_caption_logits_depend_only_on_the_tokens_up_to_their_position(small_batch):
    # The decoder reads captions[:, :-1] and logits[:, t] predicts captions[:, t + 1], so logits[:, t] may
    # read tokens 0..t only: changing the tokens from index k on must leave logits[:, :k] alone (a mask
    # that lets a position see one token ahead changes logits[:, k - 1]) and change logits[:, k].
    model, images, captions = small_batch
    model.eval()
    vocab, T = model.cfg.vocab_size, captions.shape[1] - 1
    logits = model(images, captions)["logits"]  # (B, T, vocab)
    for k in range(1, T):
        changed = captions.clone()
        changed[:, k:] = (captions[:, k:] + 1) % vocab  # every token from k on, in every row
        after = model(images, changed)["logits"]
        assert torch.allclose(after[:, :k], logits[:, :k], atol=1e-6), f"a change at token {k} leaked backwards"
        assert not torch.allclose(after[:, k], logits[:, k], atol=1e-3), f"token {k} does not reach logits[:, {k}]"


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


def test_clamp_logit_scale_puts_the_stored_value_back_into_range(small_batch):
    model = small_batch[0]
    ceiling = math.log(model.cfg.max_logit_scale)
    for value, expected in ((10.0, ceiling), (-1.0, 0.0), (2.0, 2.0)):
        with torch.no_grad():
            model.logit_scale.fill_(value)
        model.clamp_logit_scale_()
        assert model.logit_scale.item() == pytest.approx(expected)
        assert model.logit_scale.requires_grad and model.logit_scale.grad_fn is None  # still a trainable leaf


def test_logit_scale_keeps_a_gradient_at_and_above_the_ceiling(small_batch):
    # a clamp inside forward would make this gradient exactly 0 from the ceiling on, for good
    model, images, captions = small_batch
    ceiling = math.log(model.cfg.max_logit_scale)
    for value in (ceiling, ceiling + 1):
        with torch.no_grad():
            model.logit_scale.fill_(value)
        model.logit_scale.grad = None
        model(images, captions)["loss_alignment"].backward()
        assert model.logit_scale.grad.abs().item() > 1e-6


@pytest.fixture
def scrambled_model(small_batch):
    """The small model with every weight drawn at std 1, in eval mode.

    At its real initialisation (std 0.02, tied token embedding) every image decodes to <bos> repeated,
    which a decoder that merely copies the last token would reproduce too; these weights (seed chosen
    for it) write different captions for different images.
    """
    model, images, _ = small_batch
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model.eval(), images


def test_generated_captions_are_the_greedy_decoding_of_the_image_latent(scrambled_model):
    model, images = scrambled_model
    bos, pad, max_len = 1, model.cfg.pad_id, model.cfg.max_caption_len
    unended = model.generate_captions(images, bos, eos_id=-1, max_len=max_len)  # no token is <eos>
    rows = unended.tolist()
    assert len({tuple(r) for r in rows}) > 1, "every image got the same caption: choose another seed"
    # as <eos>, a token that some captions contain and others do not: they end at different steps
    eos = next(t for row in rows for t in row[1:] if any(t not in other for other in rows))
    tokens = model.generate_captions(images, bos, eos, max_len=max_len)

    # the reference: the caption decoder called step by step on the image encoder's z, argmax each time
    z = model.image_encoder(images)
    ended = torch.zeros(len(images), dtype=torch.bool)
    assert (tokens[:, 0] == bos).all()
    for t in range(1, tokens.shape[1]):
        greedy = model.caption_decoder(z, tokens[:, :t])[:, -1].argmax(dim=-1)
        assert torch.equal(tokens[:, t], greedy.masked_fill(ended, pad)), f"step {t}"
        ended |= tokens[:, t] == eos
    assert ended.all() or tokens.shape[1] == max_len  # stops as soon as every caption has ended
    assert (tokens == pad).any()  # the captions that ended first were padded

    # the caption depends on the image alone, not on the rest of the batch
    again = model.generate_captions(images[[3, 0, 3, 1]], bos, eos_id=-1, max_len=max_len)
    assert torch.equal(again, unended[[3, 0, 3, 1]])


# -- how z is pooled from the patch tokens ---------------------------------------

def _swap_two_patches(images, patch):
    """The images with their first and last patch exchanged."""
    out = images.clone()
    first, last = images[..., :patch, :patch].clone(), images[..., -patch:, -patch:].clone()
    out[..., :patch, :patch], out[..., -patch:, -patch:] = last, first
    return out


@pytest.mark.parametrize("latent_patch_dim, keeps_positions", [(8, True), (0, False)])
def test_z_knows_where_a_patch_stands_only_when_made_from_every_patch(latent_patch_dim, keeps_positions):
    torch.manual_seed(0)
    cfg = ModelConfig.small(vocab_size=50, image_size=32, latent_patch_dim=latent_patch_dim)
    encoder = MultimodalModel(cfg).image_encoder.eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z, z_swapped = encoder(images), encoder(_swap_two_patches(images, cfg.patch_size))
    # position embeddings start at zero: with the mean over the patches, only the patches' contents count
    assert torch.allclose(z, z_swapped, atol=1e-5) != keeps_positions
    assert z.shape == (2, cfg.latent_dim)


def test_a_checkpoint_from_before_latent_patch_dim_rebuilds_its_mean_pooled_model():
    from checkpoints import CheckpointError, check_model_config

    old = MultimodalModel(ModelConfig.small(vocab_size=50, image_size=32, latent_patch_dim=0))
    saved = {k: v for k, v in old.config_dict().items() if k != "latent_patch_dim"}  # as older checkpoints hold it
    rebuilt = MultimodalModel(ModelConfig.from_saved(saved))
    rebuilt.load_state_dict(old.state_dict())  # every tensor fits
    assert rebuilt.cfg.latent_patch_dim == 0
    check_model_config({"model_config": saved}, old.config_dict())  # resuming it with latent_patch_dim=0 is fine
    with pytest.raises(CheckpointError, match="latent_patch_dim"):
        check_model_config({"model_config": saved}, {**old.config_dict(), "latent_patch_dim": 8})


def test_a_negative_latent_patch_dim_is_refused():
    with pytest.raises(ValueError, match="latent_patch_dim"):
        ModelConfig.small(latent_patch_dim=-1)


# -- the conv stem --------------------------------------------------------------

def test_the_conv_stem_makes_the_same_patch_grid_and_keeps_its_he_init():
    torch.manual_seed(0)
    plain = MultimodalModel(ModelConfig.small(vocab_size=50, image_size=32))
    stem = MultimodalModel(ModelConfig.small(vocab_size=50, image_size=32, conv_stem=True))
    images = torch.rand(2, 3, 32, 32)
    assert stem.image_encoder.patch_embed(images).shape == plain.image_encoder.patch_embed(images).shape
    convs = [m for m in stem.image_encoder.patch_embed if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4  # 8-pixel patches: three halvings and the 1x1 projection
    for conv in convs[:-1]:  # He init, not the std 0.02 the rest of the model gets
        fan_in = conv.in_channels * 9
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.2)
    assert convs[-1].weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert stem.image_encoder(images).shape == (2, stem.cfg.latent_dim)


def test_the_conv_stem_needs_a_power_of_two_patch_size():
    with pytest.raises(ValueError, match="power of 2"):
        ModelConfig.small(image_size=36, patch_size=6, conv_stem=True)
    ModelConfig.small(image_size=36, patch_size=6)  # the linear patch embedding takes any size


def test_a_checkpoint_from_before_the_conv_stem_rebuilds_its_patch_embedding():
    old = MultimodalModel(ModelConfig.small(vocab_size=50, image_size=32))
    saved = {k: v for k, v in old.config_dict().items() if k != "conv_stem"}  # as older checkpoints hold it
    rebuilt = MultimodalModel(ModelConfig.from_saved(saved))
    rebuilt.load_state_dict(old.state_dict())  # every tensor fits
    assert not rebuilt.cfg.conv_stem


@pytest.mark.parametrize("conv_stem", [True, False])
def test_only_the_conv_stem_lets_a_patch_see_across_its_border(conv_stem):
    torch.manual_seed(0)
    cfg = ModelConfig.small(vocab_size=50, image_size=32, conv_stem=conv_stem)
    embed = MultimodalModel(cfg).image_encoder.patch_embed
    images = torch.zeros(1, 3, 32, 32)
    dotted = images.clone()
    dotted[..., 7, 7] = 1  # the last pixel of patch (0, 0), on its border with patches (0, 1), (1, 0) and (1, 1)
    with torch.no_grad():
        moved = (embed(dotted) - embed(images)).abs().amax(dim=1)[0] > 0  # (4, 4): which patch tokens changed
    assert moved[0, 0]
    assert bool(moved[0, 1] and moved[1, 0] and moved[1, 1]) == conv_stem
    assert not moved[2:, :].any() and not moved[:, 2:].any()  # nothing reaches patches further away


# -- shapes the GPU kernels like (issue 28) ----------------------------------------------------------------


def attention_calls(model, images, captions, monkeypatch):
    """Every scaled_dot_product_attention call of one forward and backward: (q, k, v, attn_mask, is_causal)."""
    calls, sdpa = [], F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        calls.append((q, k, v, attn_mask, is_causal))
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kwargs)
    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    out = model(images, captions)
    (out["loss_image"] + out["loss_caption"] + out["loss_alignment"]).backward()
    return calls


def test_every_attention_call_is_eligible_for_flash_or_cudnn(monkeypatch):
    # Flash and cuDNN attention need the head dim a multiple of 8 and the last dim contiguous; a mask rules flash
    # out, so there is one only where padding must be hidden from a non-causal encoder (a key mask, (B, 1, 1, T)
    # with T a multiple of 8, which the memory-efficient and cuDNN kernels take); causal attention says is_causal
    cfg = ModelConfig(vocab_size=SEED_VOCAB)
    with torch.device("meta"):
        model = MultimodalModel(cfg)
        images = torch.empty(2, 3, cfg.image_size, cfg.image_size)
        captions = torch.zeros(2, cfg.max_caption_len, dtype=torch.long)
    calls = attention_calls(model, images, captions, monkeypatch)
    assert len(calls) == cfg.image_encoder_depth + cfg.image_decoder_depth + cfg.caption_decoder_depth + \
        cfg.caption_encoder_depth
    for q, k, v, mask, is_causal in calls:
        for t in (q, k, v):
            assert t.stride(-1) == 1 and t.shape[-1] % 8 == 0 and t.shape[-1] <= 256
        assert q.shape[2] % 16 == 0  # sequence lengths fill whole tiles: 256 patches, 48 caption positions
        if mask is not None:
            assert not is_causal and mask.dtype == torch.bool and mask.shape == (2, 1, 1, k.shape[2])
    assert sum(mask is not None for *_, mask, _ in calls) == cfg.caption_encoder_depth  # the caption encoder only
    assert sum(is_causal for *_, is_causal in calls) == cfg.caption_decoder_depth


def test_the_image_decoder_attends_over_the_patches_alone(monkeypatch):
    cfg = ModelConfig(vocab_size=SEED_VOCAB)
    with torch.device("meta"):
        model = MultimodalModel(cfg)
        recon = model.image_decoder(torch.empty(2, cfg.latent_dim))
    assert cfg.num_patches == 256 and recon.shape == (2, 3, cfg.image_size, cfg.image_size)
    seen = []
    monkeypatch.setattr(model.image_decoder.transformer, "forward", lambda x, **kw: seen.append(x.shape) or x)
    model.image_decoder(torch.empty(2, cfg.latent_dim, device="meta"))
    assert seen == [(2, 256, cfg.width)]


def test_the_vocabulary_projection_is_padded_to_a_multiple_of_64_and_its_logits_are_not(small_batch):
    model, images, captions = small_batch
    assert model.cfg.vocab_size == 50 and model.caption_decoder.token_embedding.num_embeddings == 64
    out = model(images, captions)
    assert out["logits"].shape[-1] == 50
    h = torch.randn(3, model.cfg.width)
    full = h @ model.caption_decoder.token_embedding.weight.T  # (3, 64): the padded projection
    assert torch.equal(model.caption_decoder.logits(h), full[:, :50])
    generated = model.generate_captions(images, bos_id=1, eos_id=2, max_len=8)
    assert int(generated.max()) < 50  # a padding row is never decoded


def test_a_checkpoint_from_before_issue_28_rebuilds_its_z_token_and_unpadded_vocabulary(small_batch):
    model, images, captions = small_batch
    torch.manual_seed(1)
    old = MultimodalModel(ModelConfig(**{**model.config_dict(), "vocab_multiple": 1, "image_decoder_z_token": True}))
    saved = {k: v for k, v in old.config_dict().items() if k not in ("vocab_multiple", "image_decoder_z_token")}
    rebuilt = MultimodalModel(ModelConfig.from_saved(saved))
    rebuilt.load_state_dict(old.state_dict())  # every tensor fits: 50 embedding rows
    old.eval(), rebuilt.eval()
    assert torch.equal(rebuilt(images, captions)["recon"], old(images, captions)["recon"])


def stream_dtypes(model, images, captions):
    """-> (dtypes of every block's output, dtypes of every LayerNorm's output) in one forward."""
    blocks, norms = [], []
    for module in model.modules():
        if isinstance(module, LayerNorm):
            module.register_forward_hook(lambda m, i, out: norms.append(out.dtype))
        elif type(module).__name__ == "Block":
            module.register_forward_hook(lambda m, i, out: blocks.append(out.dtype))
    model(images, captions)
    return set(blocks), set(norms)


@pytest.mark.parametrize("bf16_residual", [True, False])
def test_under_bf16_autocast_the_residual_stream_stays_bf16_only_with_bf16_residual(small_batch, bf16_residual):
    model, images, captions = small_batch
    model = MultimodalModel(ModelConfig(**{**model.config_dict(), "bf16_residual": bf16_residual}))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        blocks, norms = stream_dtypes(model, images, captions)
    expected = torch.bfloat16 if bf16_residual else torch.float32
    assert blocks == {expected} and norms == {expected}
    assert stream_dtypes(model, images, captions) == ({torch.float32}, {torch.float32})  # no autocast: fp32


def test_bf16_residual_changes_nothing_in_fp32(small_batch):
    model, images, captions = small_batch
    other = MultimodalModel(ModelConfig(**{**model.config_dict(), "bf16_residual": not model.cfg.bf16_residual}))
    other.load_state_dict(model.state_dict())
    a, b = model(images, captions), other(images, captions)
    for key in ("z", "recon", "logits", "loss_alignment"):
        assert torch.equal(a[key], b[key])


def test_the_layer_norm_of_a_bf16_input_is_fp32_layer_norm_rounded_to_bf16_with_fp32_gradients():
    torch.manual_seed(0)
    norm = LayerNorm(64)
    with torch.no_grad():
        norm.weight.normal_(1, 0.1), norm.bias.normal_(0, 0.1)
    x = (torch.randn(8, 64) * 3 + 1).bfloat16().requires_grad_()
    y = norm(x)
    reference = F.layer_norm(x.float(), (64,), norm.weight, norm.bias, norm.eps)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference, rtol=2 ** -7, atol=2 ** -7)  # bf16 keeps 8 bits
    y.float().pow(2).sum().backward()
    assert norm.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    assert torch.isfinite(norm.weight.grad).all() and norm.weight.grad.abs().sum() > 0


def test_a_checkpoint_from_before_bf16_residual_keeps_its_fp32_stream(small_batch):
    from checkpoints import CheckpointError, check_model_config

    model, *_ = small_batch
    saved = {k: v for k, v in model.config_dict().items() if k != "bf16_residual"}
    assert model.cfg.bf16_residual and not ModelConfig.from_saved(saved).bf16_residual
    # resuming it exactly needs the stream it trained with: the default now differs, and the error says which field
    with pytest.raises(CheckpointError, match="bf16_residual"):
        check_model_config({"model_config": saved}, model.config_dict())
    check_model_config({"model_config": saved}, {**model.config_dict(), "bf16_residual": False})
