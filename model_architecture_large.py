"""The multimodal engraving model: images and captions joined through one latent.

    image   -> ImageEncoder   -> z (latent_dim) -> ImageDecoder   -> reconstructed image
                                                -> CaptionDecoder -> caption tokens
    caption -> CaptionEncoder -> caption embedding, pulled towards z by a contrastive loss

Every part is a pre-norm transformer over patches or tokens. The default
ModelConfig is the ~84M-parameter model the training script uses on a GPU (the seed's 85M within 1%);
`ModelConfig.small()` is a ~0.9M-parameter version for CPU work and tests.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------
# building blocks

class Attention(nn.Module):
    def __init__(self, width, num_heads, dropout):
        super().__init__()
        assert width % num_heads == 0, "width must be divisible by num_heads"
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x, causal=False, key_mask=None, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        hs = C // self.num_heads
        q, k, v = (t.view(B, T, self.num_heads, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:  # incremental decoding: the keys and values of earlier positions are kept
            if "k" in cache:
                assert T == 1, "with a filled cache, decode one position at a time"
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                causal = False  # one new query sees every earlier key (SDPA's causal mask is top-left aligned)
            cache["k"], cache["v"] = k, v
        # key_mask: (B, T) True where the key is a real token; broadcast over heads and queries
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def autocast_dtype(x):
    """The dtype autocast runs x's matmuls in, or None where autocast is off for x's device. Meta tensors (the
    roofline's count) read CUDA's autocast state, which roofline.AutocastLikeCuda sets as CUDA's autocast would."""
    device = "cuda" if x.device.type == "meta" else x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm that hands a bf16 input back in bf16, as the residual stream is under bf16_residual.

    CUDA's autocast runs layer_norm in fp32 and returns fp32, which would turn the stream back to fp32 and add a
    cast before the next matmul. Here it runs with autocast off, its weight and bias cast to bf16 (CUDA's kernel
    takes them in the input's dtype); the kernel keeps the mean and variance in fp32 either way, and the gain's
    rounding was measured not to matter (docs/LOG.md, eighth session). An fp32 input (no autocast, or
    bf16_residual=False) takes nn.LayerNorm's path unchanged."""

    def forward(self, x):
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        with torch.autocast("cuda", enabled=False):  # CPU autocast leaves layer_norm alone
            return F.layer_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class Block(nn.Module):
    def __init__(self, width, num_heads, mlp_ratio, dropout):
        super().__init__()
        self.norm1 = LayerNorm(width)
        self.attn = Attention(width, num_heads, dropout)
        self.norm2 = LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width), nn.Dropout(dropout),
        )

    def forward(self, x, causal=False, key_mask=None, cache=None):
        x = x + self.attn(self.norm1(x), causal=causal, key_mask=key_mask, cache=cache)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, depth, width, num_heads, mlp_ratio, dropout, bf16_residual=False):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = LayerNorm(width)
        self.bf16_residual = bf16_residual

    @classmethod
    def from_config(cls, cfg, depth):
        """A transformer of `depth` blocks with the model's width, heads, MLP ratio, dropout and residual dtype."""
        return cls(depth, cfg.width, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.bf16_residual)

    def forward(self, x, causal=False, key_mask=None, caches=None):
        """caches: one dict per block for incremental decoding (see Attention), or None.

        With bf16_residual, under bf16 autocast the stream enters in bf16 and stays there: each block adds its bf16
        output to it, and the output is bf16. Otherwise an fp32 parameter added at the input (positions, queries)
        makes it fp32, and every residual add, LayerNorm and cast reads and writes twice the bytes (issue 28)."""
        if self.bf16_residual and autocast_dtype(x) == torch.bfloat16:
            x = x.to(torch.bfloat16)
        for i, block in enumerate(self.blocks):
            x = block(x, causal=causal, key_mask=key_mask, cache=None if caches is None else caches[i])
        return self.norm(x)


# ----------------------------------------------------------------------------
# encoders and decoders

def stem_channels(in_channels, width, patch_size):
    """The channels of conv_stem's layers, input first: one 3x3 stride-2 convolution per halving of patch_size,
    each with half the channels of the one after it (at least 16), then a 1x1 projection to width."""
    n = patch_size.bit_length() - 1
    return [in_channels] + [max(width >> (n - 1 - i), 16) for i in range(n)] + [width]


def conv_stem(in_channels, width, patch_size):
    """Image -> (B, width, H / patch_size, W / patch_size) through 3x3 stride-2 convolutions with GELU and a 1x1
    projection (Xiao et al. 2021, "Early convolutions help transformers see better"): where a patch embedding
    sees each patch alone, the stem's overlapping windows follow a line across patches. No normalisation
    between them (GroupNorm cost the quick preset its technique measure, docs/LOG.md 2026-12-01); He init keeps their
    scale, and MultimodalModel._init_weights leaves it (keep_init)."""
    *convs, last = stem_channels(in_channels, width, patch_size)
    layers = []
    for c_in, c_out in zip(convs, convs[1:]):
        conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        conv.keep_init = True
        layers += [conv, nn.GELU()]
    return nn.Sequential(*layers, nn.Conv2d(convs[-1], last, 1))


class ImageEncoder(nn.Module):
    """Image (B, C, H, W) in [0, 1] -> latent z (B, latent_dim), ViT-style.

    z is made from every patch token in order, each first squeezed to latent_patch_dim numbers, so that
    where things stand in the image reaches z; with latent_patch_dim=0, from the mean of the patch tokens
    (as in CLIP-style pooling), which averages positions away: with it the quick preset's autoencoder cannot
    pass on even which of five patches is black (docs/LOG.md, 2026-11-30)."""

    def __init__(self, cfg):
        super().__init__()
        self.patch_embed = (conv_stem(cfg.image_channels, cfg.width, cfg.patch_size) if cfg.conv_stem else
                            nn.Conv2d(cfg.image_channels, cfg.width, cfg.patch_size, stride=cfg.patch_size))
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_patches, cfg.width))
        self.transformer = Transformer.from_config(cfg, cfg.image_encoder_depth)
        k = cfg.latent_patch_dim
        self.squeeze = nn.Linear(cfg.width, k) if k else None
        self.to_latent = nn.Linear(cfg.num_patches * k if k else cfg.width, cfg.latent_dim)

    def forward(self, images):
        x = self.patch_embed(images * 2 - 1).flatten(2).transpose(1, 2)  # (B, P, width)
        x = self.transformer(x + self.pos)
        if self.squeeze is None:
            return self.to_latent(x.mean(dim=1))  # (B, latent_dim)
        # every patch's k numbers in order, scaled by 1/sqrt(P) so that an AdamW step moves z about as far as it
        # did from the mean: unscaled, z blew up or collapsed early in short runs (diagnose.py, BENCHMARKS.md)
        return self.to_latent(self.squeeze(x).flatten(1) * x.shape[1] ** -0.5)  # (B, latent_dim)


class ImageDecoder(nn.Module):
    """Latent z -> reconstructed image in [0, 1]: one learned query per patch, each with z added, through a
    transformer.

    The sequence is the P patches alone (256 by default, a multiple of the attention kernels' tiles): z reaches
    every position through the queries, and from there every key and value. Checkpoints from before issue 28 also
    prepended z as a token of its own (sequence P + 1, the token dropped at the output); image_decoder_z_token
    rebuilds them."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.width)
        self.queries = nn.Parameter(torch.zeros(1, cfg.num_patches, cfg.width))
        self.transformer = Transformer.from_config(cfg, cfg.image_decoder_depth)
        self.to_pixels = nn.Linear(cfg.width, cfg.patch_size ** 2 * cfg.image_channels)

    def forward(self, z):
        cfg = self.cfg
        cond = self.from_latent(z)[:, None, :]  # (B, 1, width)
        x = self.queries + cond  # (B, P, width)
        if cfg.image_decoder_z_token:
            x = torch.cat([cond, x], dim=1)  # (B, 1 + P, width)
        patches = self.to_pixels(self.transformer(x)[:, -cfg.num_patches:])  # (B, P, p*p*C)
        B, g, p, C = z.shape[0], cfg.image_size // cfg.patch_size, cfg.patch_size, cfg.image_channels
        logits = patches.view(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)
        return torch.sigmoid(logits)


class CaptionDecoder(nn.Module):
    """Writes the caption from z: a causal transformer with z as a prefix token."""

    def __init__(self, cfg, token_embedding):
        super().__init__()
        self.token_embedding = token_embedding  # shared with the caption encoder
        self.vocab_size = cfg.vocab_size
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_caption_len, cfg.width))
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.width)
        self.transformer = Transformer.from_config(cfg, cfg.caption_decoder_depth)

    def logits(self, h):
        """(..., width) -> (..., vocab_size): the tied output projection. The embedding has padded_vocab rows (a
        multiple of 64, the size matmul kernels tile best); the padding rows are never a token, and their
        columns are sliced off here, so losses, accuracy and decoding see the vocabulary alone. The slice is
        copied once into contiguous memory: the loss's flattened rows and the caption statistics' softmax are then
        views of it, where each made its own copy of the strided slice before (docs/LOG.md, seventh session)."""
        return (h @ self.token_embedding.weight.T)[..., : self.vocab_size].contiguous()

    def forward(self, z, tokens, last_only=False):
        """tokens (B, T) starting with <bos> -> logits (B, T, vocab) for the token after each position; with
        last_only, (B, 1, vocab) for the last position alone (generation: the vocabulary projection of every
        earlier position would be thrown away)."""
        T = tokens.shape[1]
        x = torch.cat([self.from_latent(z)[:, None, :], self.token_embedding(tokens)], dim=1)  # (B, 1 + T, width)
        x = x + self.pos[:, : T + 1]
        h = self.transformer(x, causal=True)[:, 1:]  # drop the prefix position
        if last_only:
            h = h[:, -1:]
        return self.logits(h)

    def generate(self, z, bos_id, eos_id, pad_id, max_len):
        """Greedy decoding with a key/value cache: each step runs only the newest token through the transformer
        (the same tokens as re-running forward on the whole prefix). -> (B, <= max_len) ids starting with <bos>."""
        B = z.shape[0]
        caches = [{} for _ in self.transformer.blocks]
        tokens = torch.full((B, 1), bos_id, dtype=torch.long, device=z.device)
        x = torch.cat([self.from_latent(z)[:, None, :], self.token_embedding(tokens)], dim=1) + self.pos[:, :2]
        done = torch.zeros(B, dtype=torch.bool, device=z.device)
        for t in range(max_len - 1):
            h = self.transformer(x, causal=True, caches=caches)[:, -1]  # (B, width): the newest position
            next_token = self.logits(h).argmax(dim=-1).masked_fill(done, pad_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            done |= next_token == eos_id
            if bool(done.all()) or t == max_len - 2:
                break
            x = self.token_embedding(next_token)[:, None, :] + self.pos[:, t + 2: t + 3]  # position of token t + 1
        return tokens


class CaptionEncoder(nn.Module):
    """Caption tokens -> embedding (B, latent_dim) in the latent space, for alignment."""

    def __init__(self, cfg, token_embedding):
        super().__init__()
        self.token_embedding = token_embedding
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_caption_len, cfg.width))
        self.transformer = Transformer.from_config(cfg, cfg.caption_encoder_depth)
        self.to_latent = nn.Linear(cfg.width, cfg.latent_dim)

    def forward(self, tokens, pad_id):
        T = tokens.shape[1]
        mask = tokens != pad_id  # (B, T)
        x = self.transformer(self.token_embedding(tokens) + self.pos[:, :T], key_mask=mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        return self.to_latent((x * m).sum(1) / m.sum(1).clamp(min=1))  # masked mean pool


# ----------------------------------------------------------------------------
# losses

def gather_from_all_ranks(x):
    """(B, ...) on each of the world_size ranks -> (world_size * B, ...) in rank order, the same on every rank.

    open_clip's gather_features with gather_with_grad=False: the collective itself carries no gradient,
    and this rank's own tensor is put back into its slot so the gradient reaches the local shard only.
    Every rank must pass the same shape (the trainer's train loader drops the last, uneven batch).
    """
    world_size, rank = dist.get_world_size(), dist.get_rank()
    shards = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(shards, x.detach().contiguous())
    if x.requires_grad:
        # Every rank computes the whole global loss but backpropagates it into its own shard only, so its
        # gradient is the local shard's term of the global gradient; DDP then *averages* the ranks' gradients,
        # which would leave world_size * B samples' gradient divided by world_size (open_clip issue #616,
        # tevatron issue #30). Scale the shard's gradient by world_size; its value stays exactly x.
        x = x + (world_size - 1) * (x - x.detach())
    shards[rank] = x
    return torch.cat(shards)


def caption_loss(logits, targets, pad_id, lead_weight=1.0, lead_end_id=-1):
    """Next-token cross-entropy (nats) averaged over the targets that are not padding: logits (B, T, V), targets (B, T).

    With lead_weight != 1 and a lead_end_id, each caption's lead, its tokens up to and including the first
    lead_end_id (the end of its first sentence), counts lead_weight times in that mean (a weighted mean, so the
    loss stays in nats per token). The object a caption is about is a token or two of about forty: in a plain mean
    the scenery words outweigh it, and the quick model learns the scenery alone (docs/LOG.md, 2026-12-04, fifth
    session); captions that name their subject first can weigh it like a label. A caption without lead_end_id is
    all lead, which is the plain mean."""
    if lead_weight == 1.0 or lead_end_id < 0:
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=pad_id)
    # over flattened (B * T, V) rows: the class dimension last and contiguous, a third faster on a CPU than
    # cross_entropy over (B, V, T), which copies the logits to put it in the middle
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=pad_id,
                         reduction="none").view_as(targets)  # (B, T)
    ends = (targets == lead_end_id).long()
    in_lead = ends.cumsum(dim=1) - ends == 0  # (B, T): no lead end before this position
    weights = (targets != pad_id).float() * torch.where(in_lead, lead_weight, 1.0)
    return (ce * weights).sum() / weights.sum()


def contrastive_loss(image_emb, caption_emb, captions, logit_scale, negatives="global"):
    """Symmetric InfoNCE between image latents and caption embeddings (CLIP, arXiv:2103.00020).

    Pairs whose captions are token-for-token identical are all positives for each
    other (the target spreads evenly over them), so the loss never pushes apart
    two images that share a caption.

    negatives="global": under torchrun (more than one rank) the embeddings and captions of every rank's
    batch are gathered and each rank computes the loss of the global batch, the same value on every rank,
    equal to the single-process loss on the concatenated batch; after DDP's gradient averaging the
    gradients equal the single-process gradients on that batch too (tests/test_contrastive_ddp.py).
    negatives="local": this rank's batch only, as in a single process.
    """
    img = F.normalize(image_emb.float(), dim=-1)  # (B, D)
    txt = F.normalize(caption_emb.float(), dim=-1)  # (B, D)
    if negatives == "global" and dist.is_initialized() and dist.get_world_size() > 1:
        img, txt, captions = (gather_from_all_ranks(t) for t in (img, txt, captions))  # (N, D), (N, D), (N, T)
    logits = logit_scale * img @ txt.T  # (N, N), N = B or world_size * B
    same = (captions[:, None, :] == captions[None, :, :]).all(dim=-1).float()  # (N, N), symmetric, diagonal 1
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


# ----------------------------------------------------------------------------
# the model

@dataclass
class ModelConfig:
    vocab_size: int = 1266  # set from the tokenizer
    max_caption_len: int = 48  # tokens, <bos> and <eos> included (the bundled captions need up to 48)
    pad_id: int = 0
    image_size: int = 128  # pixels, square
    image_channels: int = 3
    patch_size: int = 8  # pixels per patch side
    width: int = 768  # transformer width everywhere
    num_heads: int = 12
    mlp_ratio: int = 4
    image_encoder_depth: int = 4
    image_decoder_depth: int = 4
    caption_decoder_depth: int = 2
    caption_encoder_depth: int = 1
    latent_dim: int = 1024  # the shared latent space
    latent_patch_dim: int = 8  # z from every patch token, each squeezed to this many numbers (0 = their mean)
    conv_stem: bool = False  # embed patches with 3x3 convolutions (patch_size a power of 2), not one linear map:
    # measured on the quick preset, not adopted (docs/LOG.md, 2026-12-01)
    dropout: float = 0.0
    caption_lead_weight: float = 1.0  # each caption's first sentence counts this many times in loss_caption (1 = plain)
    lead_end_id: int = -1  # the token that ends a caption's first sentence ('.'; set from the tokenizer; -1 = none)
    max_logit_scale: float = 100.0  # upper bound on exp(logit_scale), the inverse temperature (clamp_logit_scale_)
    contrastive_negatives: str = "global"  # under torchrun: "global", every rank's batch; "local", this rank's only
    vocab_multiple: int = 64  # the token embedding's rows (the tied output projection's columns): vocab_size rounded
    # up to a multiple of this, the size matmul kernels tile best (padded_vocab)
    image_decoder_z_token: bool = False  # z also as a token of the image decoder's sequence (checkpoints before it)
    bf16_residual: bool = True  # under bf16 autocast, the residual stream and LayerNorms in bf16 (half the bytes of
    # fp32); no effect in fp32

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.conv_stem and self.patch_size & (self.patch_size - 1):
            raise ValueError(f"conv_stem needs a power of 2 as patch_size, not {self.patch_size}")
        if self.vocab_multiple < 1:
            raise ValueError(f"vocab_multiple must be at least 1, not {self.vocab_multiple}")
        if not 0 < self.caption_lead_weight < math.inf:
            raise ValueError(f"caption_lead_weight must be a finite number above 0, not {self.caption_lead_weight}")
        if self.latent_patch_dim < 0:
            raise ValueError(f"latent_patch_dim must be 0 or more, not {self.latent_patch_dim}")
        if self.contrastive_negatives not in ("global", "local"):
            raise ValueError(f"contrastive_negatives must be 'global' or 'local', not {self.contrastive_negatives!r}")

    @property
    def num_patches(self):
        return (self.image_size // self.patch_size) ** 2

    @property
    def padded_vocab(self):
        """vocab_size rounded up to a multiple of vocab_multiple: the rows of the token embedding."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    @staticmethod
    def saved_fields(saved: dict) -> dict:
        """A checkpoint's model_config with the fields it predates filled in (LEGACY_DEFAULTS)."""
        return {**LEGACY_DEFAULTS, **saved}

    @classmethod
    def from_saved(cls, saved: dict):
        """The config a checkpoint's model_config describes, older checkpoints included."""
        return cls(**cls.saved_fields(saved))

    @classmethod
    def small(cls, **kwargs):
        """About 0.9M parameters at 64 px, for CPU work and tests (the quick preset adds 16-pixel patches: 1.0M)."""
        defaults = dict(width=96, num_heads=4, image_encoder_depth=2, image_decoder_depth=2,
                        caption_decoder_depth=1, caption_encoder_depth=1, latent_dim=128)
        return cls(**{**defaults, **kwargs})


# ModelConfig fields added after checkpoints were first written -> the value that rebuilds those older models
# (a checkpoint's model_config lacks the field): use ModelConfig.from_saved
LEGACY_DEFAULTS = {"latent_patch_dim": 0, "vocab_multiple": 1, "image_decoder_z_token": True,
                   "bf16_residual": False}  # caption_lead_weight and lead_end_id need none: their defaults are the
# plain mean that older checkpoints trained with


class MultimodalModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        token_embedding = nn.Embedding(cfg.padded_vocab, cfg.width)
        self.image_encoder = ImageEncoder(cfg)
        self.image_decoder = ImageDecoder(cfg)
        self.caption_decoder = CaptionDecoder(cfg, token_embedding)
        self.caption_encoder = CaptionEncoder(cfg, token_embedding)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)) and not getattr(module, "keep_init", False):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, images, captions):
        """images (B, C, H, W) in [0, 1]; captions (B, T) token ids, <bos> ... <eos> <pad>...

        Returns the latent, the outputs the metrics need, and the three loss components.
        """
        cfg = self.cfg
        z = self.image_encoder(images)
        recon = self.image_decoder(z)
        logits = self.caption_decoder(z, captions[:, :-1])  # predict captions[:, 1:]
        targets = captions[:, 1:]
        caption_emb = self.caption_encoder(captions, cfg.pad_id)
        # Gather negatives from other ranks only in training: evaluation runs each rank over its own validation
        # shard, whose batch count and last batch size can differ between ranks, so a collective could hang.
        negatives = cfg.contrastive_negatives if self.training else "local"
        return {
            "z": z,
            "caption_emb": caption_emb,
            "recon": recon,
            "logits": logits,
            "targets": targets,
            "loss_image": F.mse_loss(recon.float(), images.float()),
            "loss_caption": caption_loss(logits, targets, cfg.pad_id, cfg.caption_lead_weight, cfg.lead_end_id),
            "loss_alignment": contrastive_loss(z, caption_emb, captions, self.logit_scale.exp(), negatives),
        }

    @torch.no_grad()
    def clamp_logit_scale_(self):
        """Clamp the stored logit_scale to [0, ln(max_logit_scale)]: call after every optimizer step.

        As CLIP and open_clip do: a clamp inside forward would give the parameter a zero gradient once it
        passed the bound, and it could never come back down.
        """
        self.logit_scale.clamp_(0, math.log(self.cfg.max_logit_scale))

    @torch.no_grad()
    def generate_captions(self, images, bos_id, eos_id, max_len=None):
        """Greedy decoding from each image's latent -> (B, <= max_len) token ids starting with <bos>."""
        return self.captions_from_latents(self.image_encoder(images), bos_id, eos_id, max_len)

    @torch.no_grad()
    def captions_from_latents(self, z, bos_id, eos_id, max_len=None):
        """Greedy decoding from latents z (B, latent_dim) already computed -> (B, <= max_len) token ids."""
        return self.caption_decoder.generate(z, bos_id, eos_id, self.cfg.pad_id, max_len or self.cfg.max_caption_len)

    def config_dict(self):
        return asdict(self.cfg)


# ----------------------------------------------------------------------------
# compute cost

def estimate_flops(cfg: ModelConfig, batch_size: int = 1) -> dict:
    """Analytic FLOPs per sample of one forward pass, by part, plus the training estimate.

    Convention (Kaplan et al. 2020, arXiv:2001.08361, sec. 2.1; PaLM appendix B; nanoGPT's estimate_mfu):
    a matmul of (m x k) by (k x n) costs 2*m*n*k FLOPs (one multiply, one add); only matmuls count:
    every nn.Linear, the patch-embedding convolution (a matmul over patches) or the conv stem's, attention's QK^T and
    AV over the full T x T square (causal and padding masks not discounted, as FlashAttention-style
    kernels and torch.utils.flop_counter also count it), the tied vocabulary projection and the
    B x B contrastive logits. Biases, norms, activations, softmax, losses and embedding lookups are
    ignored (well under 1% here). Training ~ 3 x forward: the backward pass costs twice the forward
    (gradients with respect to both the activations and the weights).

    Captions are counted at their padded length, max_caption_len, as the batches are padded.
    `batch_size` only enters through the contrastive logits (2 * B * latent_dim per sample).
    Returns a dict of FLOPs per sample: one entry per part, "forward" (their sum), "training" (3 x forward).
    """
    W, D, r, K = cfg.width, cfg.latent_dim, cfg.mlp_ratio, cfg.latent_patch_dim
    P, L = cfg.num_patches, cfg.max_caption_len

    def transformer(depth, T):
        # per block: qkv 2*T*W*3W + proj 2*T*W*W + MLP 2 * 2*T*W*rW, attention QK^T + AV 2 * 2*T*T*W
        return depth * ((8 + 4 * r) * T * W * W + 4 * T * T * W)

    def patch_embedding():
        if not cfg.conv_stem:
            return 2 * P * (cfg.image_channels * cfg.patch_size ** 2) * W  # one conv, a matmul over the patches
        channels, side, flops = stem_channels(cfg.image_channels, W, cfg.patch_size), cfg.image_size, 0
        for c_in, c_out in zip(channels[:-2], channels[1:-1]):  # 3x3 stride 2: each output pixel sees 9 * c_in
            side //= 2
            flops += 2 * side * side * 9 * c_in * c_out
        return flops + 2 * P * channels[-2] * W  # the 1x1 projection

    parts = {
        "image_encoder": patch_embedding() + transformer(cfg.image_encoder_depth, P)
        + (2 * P * W * K + 2 * P * K * D if K else 2 * W * D),  # squeeze every patch, to_latent (or the mean's)
        "image_decoder": 2 * D * W + transformer(cfg.image_decoder_depth, P + cfg.image_decoder_z_token)  # queries
        + 2 * P * W * cfg.patch_size ** 2 * cfg.image_channels,  # to_pixels
        "caption_decoder": 2 * D * W + transformer(cfg.caption_decoder_depth, L)  # z prefix + L - 1 tokens
        + 2 * (L - 1) * W * cfg.padded_vocab,  # tied output projection, padding included
        "caption_encoder": transformer(cfg.caption_encoder_depth, L) + 2 * W * D,
        "contrastive": 2 * batch_size * D,  # (B, D) @ (D, B) logits, per sample
    }
    forward = sum(parts.values())
    return {**parts, "forward": forward, "training": 3 * forward}
