"""The measures the field reports for an image-caption model, each defined once, and their baselines.

    from evaluation import evaluate_split, baseline_split
    metrics = evaluate_split(model, images_u8, tokens, tokenizer)   # every measure over a whole split
    baseline = baseline_split(images_u8, tokens, tokenizer)         # the same measures, learning nothing

Retrieval in both directions (R@1/5/10, median rank; open_clip's definitions), caption quality
(BLEU-4, CIDEr-D), reconstruction quality (PSNR, SSIM) and, where the generator stored a ground
truth per image, grounded caption accuracy. train_wandb.py and sample.py both call evaluate_split, and
baseline_split for the level at which each measure says that nothing was learned.
"""

import contextlib
import functools
import importlib.util
import math
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MEASURE_PACKAGES = ("sacrebleu",)  # imported only when a measure runs: they cost start-up time


def missing_packages():
    """-> a one-line message naming the measures' libraries that are not installed, or None. Callers check it
    at start-up, so that a run does not train for an epoch and then fail at its first validation."""
    missing = [name for name in MEASURE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (the evaluation measures need it): pip install -r requirements.txt"
    return None


# ----------------------------------------------------------------------------
# the registry: every validation measure, declared once

@dataclass(frozen=True)
class Measure:
    meaning: str  # what it measures, as the report and WANDB_GUIDE.md say it
    lower_is_better: bool = False  # which way it improves
    share_of: str = ""  # a share of this many items (the name of the count logged beside it), else ""
    error: str = ""  # the name of its standard error at chance, logged beside it, else ""


RETRIEVAL, GROUNDED, PROBED = "items", "grounded_items", "grounded_items"  # the counts a share is over

# logged once per epoch by evaluate_split (below) and probes.py; the report, the logger, the checkpoints and the
# health checks read them from here
VAL_MEASURES = {
    "i2t_r1": Measure("image→text: share of images whose true caption ranks 1st", share_of=RETRIEVAL),
    "i2t_r5": Measure("image→text: … in the top 5", share_of=RETRIEVAL),
    "i2t_r10": Measure("image→text: … in the top 10", share_of=RETRIEVAL),
    "i2t_median_rank": Measure("image→text: median rank of the true caption (1 = best)", lower_is_better=True),
    "t2i_r1": Measure("text→image: share of captions whose image ranks 1st", share_of=RETRIEVAL),
    "t2i_r5": Measure("text→image: … in the top 5", share_of=RETRIEVAL),
    "t2i_r10": Measure("text→image: … in the top 10", share_of=RETRIEVAL),
    "t2i_median_rank": Measure("text→image: median rank of the true image (1 = best)", lower_is_better=True),
    "bleu4": Measure("generated vs true caption: BLEU-4 (0–1)"),
    "cider_d": Measure("generated vs true caption: CIDEr-D (0–10)"),
    "psnr": Measure("reconstruction: peak signal-to-noise ratio (dB, higher is better)"),
    "ssim": Measure("reconstruction: structural similarity (0–1)"),
    "grounded_object": Measure("captions naming the main object correctly (share)", share_of=GROUNDED),
    "grounded_count": Measure("captions giving its count correctly (share)", share_of=GROUNDED),
    "grounded_position": Measure("captions giving its position correctly (share)", share_of=GROUNDED),
    "grounded_technique": Measure("captions naming the print technique correctly (share)", share_of=GROUNDED),
    "grounded_sky": Measure("captions naming the sky and time of day correctly (share)", share_of=GROUNDED),
    # the linear probes on z (probes.py): what a linear map from z predicts on the validation items
    "probe_word_auc": Measure("linear probe on z: mean ROC AUC of the caption's most frequent content words "
                              "(0.5 = chance)", error="probe_word_auc_se"),
    "probe_kind": Measure("linear probe on z: accuracy on the main object's kind (share)", share_of=PROBED),
    "probe_count": Measure("linear probe on z: … on its count (share)", share_of=PROBED),
    "probe_position": Measure("linear probe on z: … on its position (share)", share_of=PROBED),
    "probe_technique": Measure("linear probe on z: … on the print technique (share)", share_of=PROBED),
    "probe_time": Measure("linear probe on z: … on the time of day (share)", share_of=PROBED),
}
PROBE_MEASURES = tuple(m for m in VAL_MEASURES if m.startswith("probe_"))  # tabled apart from the others
LOSSES = ("loss_total", "loss_image", "loss_caption", "loss_alignment")  # the val losses, all better lower
BEST_METRICS = LOSSES + tuple(VAL_MEASURES)  # what --best_metric can choose best.pt by


def lower_is_better(name):
    """Is this validation loss or VAL_MEASURES measure better lower? The one definition of which way a measure
    improves: better(), and through it the report's sentences, the logger's summaries and the Trainer's choice of
    best.pt (--best_metric), use it."""
    return name in LOSSES or (name in VAL_MEASURES and VAL_MEASURES[name].lower_is_better)


def better(name, value, other):
    """Is value of this validation loss or VAL_MEASURES measure better than other?"""
    return value < other if lower_is_better(name) else value > other


# ----------------------------------------------------------------------------
# retrieval

def retrieval_ranks(logits, positive):
    """0-based rank of each row's best-placed positive column, the columns sorted by descending logit.

    Ties are broken by column index (a stable sort), so the result does not depend on the device.
    """
    ranking = logits.argsort(dim=1, descending=True, stable=True)  # (N, N) column indices, best first
    hits = positive.gather(1, ranking)  # (N, N) True where the column at that place is a positive
    return hits.float().argmax(dim=1)  # the first True; every row has one (the diagonal)


def retrieval_metrics(image_emb, text_emb, captions):
    """Image-to-text and text-to-image retrieval over the whole split, as open_clip's get_clip_metrics
    (src/open_clip_train/train.py): R@k = share of queries whose ground truth ranks in the top k,
    median_rank = floor(median(0-based rank)) + 1.

    One change: many items share a caption, so every item whose caption has the same token ids as the
    ground truth is a hit too; a query's rank is that of its best-placed positive.
    image_emb, text_emb: (N, D), normalised here; captions: (N, T) token ids.
    """
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(text_emb.float(), dim=-1)
    logits = img @ txt.T  # (N, N) cosine similarities
    # one id per distinct caption: comparing ids costs N*N, comparing whole captions N*N*T memory
    caption_id = torch.unique(captions, dim=0, return_inverse=True)[1]
    positive = caption_id[:, None] == caption_id[None, :]  # (N, N), symmetric
    metrics = {}
    for name, ranks in (("i2t", retrieval_ranks(logits, positive)), ("t2i", retrieval_ranks(logits.T, positive))):
        for k in (1, 5, 10):
            metrics[f"{name}_r{k}"] = (ranks < k).float().mean()
        # quantile, not torch.median: for an even count numpy's median (open_clip's) averages the middle two
        metrics[f"{name}_median_rank"] = ranks.float().quantile(0.5).floor() + 1
    return {k: v.item() for k, v in metrics.items()}


# ----------------------------------------------------------------------------
# caption quality

def bleu4(candidates, references):
    """Corpus BLEU-4 (Papineni et al. 2002) with sacrebleu, no smoothing, one reference per caption.

    Captions are compared as whitespace-separated tokens (tokenize="none"): both sides come from
    CaptionTokenizer, so they are already lower-cased words and punctuation marks joined by single spaces.
    (torchmetrics' bleu_score gives the same number, 70 times slower: 0.55 s a validation on the CPU.)
    """
    import sacrebleu  # imported here: only evaluation needs it

    return sacrebleu.corpus_bleu(candidates, [references], tokenize="none", smooth_method="none",
                                 force=True).score / 100


def _ngram_counts(words, n):
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _tfidf(counts, n, doc_freq, log_num_refs):
    """An n-gram count's tf-idf vector, its norm per n-gram length and its length as the reference code takes it."""
    vec = {gram: tf * (log_num_refs - math.log(max(1.0, doc_freq[gram]))) for gram, tf in counts.items()}
    norms = [0.0] * n
    for gram, weight in vec.items():
        norms[len(gram) - 1] += weight ** 2
    # the reference code's "length" counts bigrams, not words: kept, to match its penalty exactly
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vec, [math.sqrt(x) for x in norms], length


@functools.lru_cache(maxsize=4)
def _reference_stats(references, n):
    """-> (the references' tf-idf vectors, their document frequencies): the same split is scored every epoch, so they
    are computed once. references: a tuple of strings (hashable, for the cache)."""
    refs = [_ngram_counts(r.split(), n) for r in references]
    doc_freq = Counter(gram for ref in refs for gram in ref)  # references holding each n-gram
    return [_tfidf(ref, n, doc_freq, math.log(len(refs))) for ref in refs], doc_freq


def cider_d(candidates, references, n=4, sigma=6.0):
    """CIDEr-D (Vedantam et al. 2015, arXiv:1411.5726), mean over the captions, one reference per caption.

    Matches coco-caption's cider_scorer.py (pycocoevalcap 1.2's `Cider`, which despite its name is CIDEr-D:
    clipped counts and the Gaussian length penalty), with idf from the references of these captions:
    tf-idf vectors of the 1..n-grams, the candidate's weights clipped by the reference's, cosine per n,
    times exp(-delta^2 / (2 sigma^2)), averaged over n and scaled by 10.
    Captions are whitespace-separated tokens, as in bleu4.
    """
    refs, doc_freq = _reference_stats(tuple(references), n)
    log_num_refs = math.log(len(refs))
    scores = []
    for candidate, (vec_r, norm_r, len_r) in zip(candidates, refs):
        vec_c, norm_c, len_c = _tfidf(_ngram_counts(candidate.split(), n), n, doc_freq, log_num_refs)
        sims = [0.0] * n
        for gram, weight in vec_c.items():
            sims[len(gram) - 1] += min(weight, vec_r.get(gram, 0.0)) * vec_r.get(gram, 0.0)
        sims = [s / (norm_c[k] * norm_r[k]) if norm_c[k] and norm_r[k] else s for k, s in enumerate(sims)]
        penalty = math.exp(-((len_c - len_r) ** 2) / (2 * sigma ** 2))
        scores.append(10.0 * penalty * sum(sims) / n)
    return sum(scores) / len(scores)


def caption_quality(candidates, references):
    """Generated captions against their references (lists of strings, one each) -> bleu4, cider_d."""
    return {"bleu4": bleu4(candidates, references), "cider_d": cider_d(candidates, references)}


# ----------------------------------------------------------------------------
# reconstructions

SSIM_WINDOW = 11  # pixels: the side of SSIM's Gaussian window; images must be at least this large
SSIM_SIGMA = 1.5  # pixels: the window's standard deviation (Wang et al. 2004)


def reconstruction_quality(recon, images):
    """Per-image PSNR (dB) and SSIM (ssim), pixels in [0, 1] -> {"psnr": (B,), "ssim": (B,)}; average them over
    the split. Both equal torchmetrics' functions to float rounding (tests/test_evaluation.py); written here
    because importing torchmetrics took 2.5 s of the quick preset's training time and its SSIM twice as long."""
    recon, images = recon.float().clamp(0, 1), images.float()
    mse = (recon - images).pow(2).flatten(1).mean(dim=1)
    return {"psnr": -10 * torch.log10(mse), "ssim": ssim(recon, images)}


def ssim(preds, target, data_range=1.0, k1=0.01, k2=0.03):
    """Per-image SSIM (B,) of images (B, C, H, W) (Wang et al. 2004), as torchmetrics'
    structural_similarity_index_measure computes it by default: a SSIM_WINDOW-pixel Gaussian window of SSIM_SIGMA,
    reflection padding, the mean over every pixel and channel. The window runs as two 1-D passes (the 2-D Gaussian
    is their product), where torchmetrics convolves with the 11 x 11 window: half the time on a 2-core CPU."""
    channels, pad = preds.shape[1], SSIM_WINDOW // 2
    x = torch.arange(SSIM_WINDOW, dtype=preds.dtype, device=preds.device) - pad
    g = torch.exp(-((x / SSIM_SIGMA) ** 2) / 2)
    g = (g / g.sum()).repeat(5 * channels, 1, 1, 1)  # (5C, 1, 1, window): one per channel of each statistic
    preds, target = (F.pad(t, (pad,) * 4, mode="reflect") for t in (preds, target))
    stats = torch.cat([preds, target, preds * preds, target * target, preds * target], dim=1)  # (B, 5C, H', W')
    blurred = F.conv2d(F.conv2d(stats, g, groups=5 * channels), g.transpose(2, 3), groups=5 * channels)
    mu_p, mu_t, pp, tt, pt = blurred.split(channels, dim=1)  # local means of each statistic, (B, C, H, W)
    var_p, var_t = (pp - mu_p ** 2).clamp(min=0), (tt - mu_t ** 2).clamp(min=0)
    cov = pt - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(dim=1)


# ----------------------------------------------------------------------------
# grounded caption accuracy

def grounded_accuracy(captions, truths, matcher=None):
    """Share of captions that get each grounded key right: by default the image's main object, its count, its
    position, the print's technique, and the sky with its time of day.

    truths: one dict per caption (the generator's `truth` field in metadata.jsonl) or None where the item
    has none; only items with a truth count. matcher(caption, truth) -> {key: bool}, by default
    data.engravings.grounded_match; a key it leaves out (its truth does not say) is not counted for that item.
    -> {"grounded_<key>": share over the items judged on that key}, or {} when no item has a truth.
    """
    pairs = [(c, t) for c, t in zip(captions, truths) if t is not None]
    if not pairs:
        return {}
    if matcher is None:
        try:
            from data.engravings import grounded_match as matcher  # imported here: only needed with truths
        except ImportError:
            warnings.warn("data.engravings has no grounded_match: grounded accuracy not measured")
            return {}
    matches = [matcher(c, t) for c, t in pairs]
    keys = dict.fromkeys(key for m in matches for key in m)  # every key judged anywhere, in first-seen order
    judged = {key: [bool(m[key]) for m in matches if key in m] for key in keys}
    return {f"grounded_{key}": sum(hits) / len(hits) for key, hits in judged.items()}


# ----------------------------------------------------------------------------
# the entry point

@torch.no_grad()
def evaluate_split(model, images_u8, tokens, tokenizer, truths=None, batch_size=256,
                   autocast=contextlib.nullcontext(), return_captions=False, forward=None, on_batch=None,
                   generate_batch_size=256):
    """Every measure above over one split: images_u8 (N, 3, H, W) uint8, tokens (N, T) caption ids,
    truths: None or one dict-or-None per item. -> {name: float}, or (metrics, generated captions).

    One forward pass in eval mode, in batches of batch_size (forward: the model's forward, by default the model
    itself; on_batch(out, images), if given, sees every batch's outputs, so a caller can take its loss metrics
    from the same pass). Greedy captions are generated from the pass's latents in batches of
    generate_batch_size; references are the decoded caption tokens, so both sides have the same tokenisation
    (and truncation). The tensors stay on their device until the end.
    """
    forward = forward or model
    was_training = model.training
    model.eval()
    image_emb, text_emb, psnr, ssim, generated = [], [], [], [], []
    for i in range(0, len(images_u8), batch_size):
        images = images_u8[i:i + batch_size].float() / 255
        with autocast:
            out = forward(images, tokens[i:i + batch_size])
        if on_batch is not None:
            on_batch(out, images)
        image_emb.append(out["z"].float())
        text_emb.append(out["caption_emb"].float())
        quality = reconstruction_quality(out["recon"], images)
        psnr.append(quality["psnr"])
        ssim.append(quality["ssim"])
    image_emb = torch.cat(image_emb)
    for i in range(0, len(image_emb), generate_batch_size):
        with autocast:
            generated.append(model.captions_from_latents(image_emb[i:i + generate_batch_size], tokenizer.BOS,
                                                         tokenizer.EOS))
    model.train(was_training)

    captions = [tokenizer.decode(ids) for batch in generated for ids in batch.tolist()]  # a host sync, once
    metrics = split_measures(image_emb, torch.cat(text_emb), tokens, torch.cat(psnr), torch.cat(ssim), captions,
                             tokenizer, truths)
    return (metrics, captions) if return_captions else metrics


def split_measures(image_emb, text_emb, tokens, psnr, ssim, captions, tokenizer, truths=None):
    """The measures from a split's outputs: latents (N, D) of the images and of their captions, caption ids
    (N, T), per-image PSNR and SSIM (N,), one generated caption (a string) per image, or None to leave out the
    caption measures. -> {name: float}"""
    metrics = retrieval_metrics(image_emb, text_emb, tokens)
    metrics["psnr"] = psnr.mean().item()
    metrics["ssim"] = ssim.mean().item()
    if captions is None:
        return metrics
    references = [tokenizer.decode(ids) for ids in tokens.tolist()]
    metrics.update(caption_quality(captions, references))
    if truths is not None:
        metrics.update(grounded_accuracy(captions, truths))
    return metrics


def mean_image(images_u8, batch_size=1024):
    """The pixel-wise mean (C, H, W) in [0, 1] of images_u8 (N, C, H, W) uint8, summed in batches of batch_size
    so that no float copy of the whole split is made."""
    total = sum(images_u8[i:i + batch_size].double().sum(dim=0) for i in range(0, len(images_u8), batch_size))
    return (total / (255 * len(images_u8))).float()


BASELINE_OFFSETS = 32  # shifts of the captions whose grounded accuracy the caption baseline averages
BASELINE_TEXT_OFFSETS = 4  # of those, the ones whose BLEU-4 and CIDEr-D it averages (steadier, 14x slower)


@torch.no_grad()
def baseline_split(images_u8, tokens, tokenizer, truths=None, reference_image=None, latent_dim=128, seed=0):
    """What every measure of evaluate_split gives on this split for a model that learned nothing about the
    individual images: the level each measure is read against (a measure at its baseline learned nothing).

    - retrieval: random latents (seeded), the same for the images and the captions: chance, with this split's
      shared captions counted as hits, as in evaluate_split;
    - reconstructions: every image reconstructed as reference_image (C, H, W) in [0, 1]; the training split's
      mean image is what a decoder that ignores its latent learns (default: this split's own mean);
    - captions: each image is given the true caption of another item of the split (the items shifted by an
      offset, so none keeps its own): fluent catalogue text about some other image. Their grounded accuracy
      is averaged over BASELINE_OFFSETS random offsets (all of them on a small split), their BLEU-4 and
      CIDEr-D over the first BASELINE_TEXT_OFFSETS of them: one offset alone is a noisy draw (on the bundled
      validation split grounded_object ranges 0.035-0.107 over the offsets, around a mean of 0.073). Left
      out on a split of one item, which has no other caption. The offsets depend on seed, not on latent_dim.
    -> {name: float}, the names of evaluate_split.
    """
    n = len(images_u8)
    generator = torch.Generator().manual_seed(seed)
    image_emb, text_emb = torch.randn(2, n, latent_dim, generator=generator)
    if reference_image is None:
        reference_image = mean_image(images_u8)
    psnr, ssim = [], []
    for i in range(0, n, 256):
        images = images_u8[i:i + 256].float() / 255
        quality = reconstruction_quality(reference_image.to(images.device).expand_as(images), images)
        psnr.append(quality["psnr"].cpu())
        ssim.append(quality["ssim"].cpu())
    tokens = tokens.cpu()
    metrics = split_measures(image_emb, text_emb, tokens, torch.cat(psnr), torch.cat(ssim), None, tokenizer)
    if n > 1:  # one item has no other caption
        references = [tokenizer.decode(ids) for ids in tokens.tolist()]
        offsets = torch.randperm(n - 1, generator=torch.Generator().manual_seed(seed))[:BASELINE_OFFSETS] + 1
        shifted = [references[-k:] + references[:-k] for k in offsets.tolist()]  # item i gets item i - k's caption
        metrics.update(mean_measures([caption_quality(c, references) for c in shifted[:BASELINE_TEXT_OFFSETS]]))
        if truths is not None:
            metrics.update(mean_measures([grounded_accuracy(c, truths) for c in shifted]))
    return metrics


def mean_measures(results):
    """The mean of each measure over a list of {name: float} (over those that have it)."""
    names = dict.fromkeys(name for result in results for name in result)
    return {name: statistics.fmean(r[name] for r in results if name in r) for name in names}


# ----------------------------------------------------------------------------
# noise

def batch_standard_error(batch_means, batch_sizes):
    """The standard error of a split's mean from the means of its batches (B,) and their sizes (B,): the
    sandwich estimate sqrt(sum w_b^2 (x_b - m)^2) / sum w_b * sqrt(B / (B - 1)), m the size-weighted mean.
    Equal batches give std(x_b) / sqrt(B). Batches, not items, are the unit because the contrastive loss is
    a property of a batch. The health checks judge a change of a validation loss against it (val/<loss>_se);
    nan with fewer than 2 batches."""
    x, w = torch.as_tensor(batch_means, dtype=torch.float64), torch.as_tensor(batch_sizes, dtype=torch.float64)
    n = x.numel()
    if n < 2:
        return float("nan")
    mean = (w * x).sum() / w.sum()
    return float(((w * (x - mean)) ** 2).sum().sqrt() / w.sum() * math.sqrt(n / (n - 1)))
