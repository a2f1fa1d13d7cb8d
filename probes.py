"""Linear probes on the frozen latent z: what it holds about each image, read as representation-learning papers
read a frozen encoder (a linear map fit on training items' features, scored on held-out items; e.g. CLIP's
linear-probe evaluation, Radford et al. 2021, arXiv:2103.00020, sec. 3.2).

    probe = LatentProbe(fit_tokens, fit_truths, val_tokens, val_truths, tokenizer)   # the targets, fixed for a run
    probe.chance()               # what a z that holds nothing scores: {"probe_word_auc": 0.5, "probe_kind": ...}
    probe.score(z_fit, z_val)    # {"probe_word_auc": ..., "probe_word_auc_se": ..., "probe_kind": ..., ...}

Two probes, each a closed-form ridge regression on z standardised with the training sample's mean and std:
- caption words, on any data: is each of the PROBE_WORDS content words in most training captions in an item's
  caption? Scored by the ROC AUC of each word over the validation split, averaged over the words (0.5: chance).
- ground-truth fields, where metadata.jsonl rows carry the generator's `truth` (the bundled set): the main
  object's kind, count and position, the print's technique and the time of day, each a multi-class probe (ridge
  on one-hot targets, the largest output wins) scored by accuracy beside the majority class's share.
train_wandb.py's Validator fits them on the z of a fixed sample of the training split at every validation.
"""

import contextlib
import math
import re

import torch

from health.core import UNTRAINED

PROBE_SAMPLE = 2048  # training items the probes are fit on (a seeded sample, drawn once a run)
PROBE_WORDS = 64  # caption words the word probe predicts: the content words in most training captions
RIDGE_FACTORS = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)  # the ridge penalty's grid, times the number of items fit
HOLDOUT_FRACTION = 0.2  # share of the training sample held out to choose the penalty, before the refit on all of it
NOVELTY_QUANTILE = 0.99  # LatentReference: the share of validation images an image must lie farther out than
WORDS_SHOWN_MIN = 10  # the words named best and worst are in and out of at least this many validation captions
FIELDS = {  # probe name -> the path to its value in a truth dict (data/engravings/scene.py's truth_for)
    "kind": ("main", "kind"), "count": ("main", "count"), "position": ("main", "position"),
    "technique": ("technique",), "time": ("time",),
}
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be been before being below beneath between both but
by can did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up upon very was we were what when where which while who whom
why will with within without you your yours
""".split())  # function words: every image's caption has them, whatever is drawn


# ----------------------------------------------------------------------------
# targets

def field_value(truth, path):
    """truth[path[0]][path[1]]..., or None where the truth or a key along the path is missing."""
    value = truth
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def word_presence(tokens, vocab_size):
    """(N, vocab_size) bool: which token ids occur in each caption of tokens (N, T)."""
    return torch.zeros(len(tokens), vocab_size, dtype=torch.bool, device=tokens.device).scatter_(1, tokens, True)


def content_words(tokens, tokenizer, k=PROBE_WORDS):
    """Ids of the k content words in most of the captions tokens (N, T), most frequent first: no special token,
    punctuation mark or stop word, and none that is in every caption (nothing to tell apart)."""
    counts = word_presence(tokens, len(tokenizer)).sum(dim=0).tolist()
    eligible = [i for i, word in enumerate(tokenizer.itos) if i >= len(tokenizer.SPECIALS)
                and 0 < counts[i] < len(tokens) and re.match(r"\w", word) and word not in STOP_WORDS]
    return sorted(eligible, key=lambda i: (-counts[i], i))[:k]


def class_labels(values, classes):
    """Each value's index in classes; -1 for a value outside them, -2 where unknown (None: not scored)."""
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([-2 if v is None else index.get(v, -1) for v in values], dtype=torch.long)


# ----------------------------------------------------------------------------
# ridge regression

def ridge_path(x, y, factors=RIDGE_FACTORS):
    """Ridge weights for each penalty lambda = factor * n: the W (D, T) solving (X^T X + lambda I) W = X^T Y, for
    x (n, D) and centred targets y (n, T), one Cholesky factorisation a penalty (the matrix is positive definite).
    (Not one eigendecomposition for the whole grid: LAPACK's eigh took 0.9 s for D = 128 on a busy 2-core CPU,
    a Cholesky factorisation 8 ms.)"""
    gram, xty = x.T @ x, x.T @ y
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    return [torch.cholesky_solve(xty, torch.linalg.cholesky(gram + f * max(len(x), 1) * eye)) for f in factors]


class Ridge:
    """Linear maps from z to several targets at once: z standardised with the training sample's mean and std,
    targets centred (an unpenalised intercept), each group of target columns with its own penalty."""

    def __init__(self, z, y, groups, seed=0):
        """z (n, D), y (n, T); groups: {name: column indices} that share a penalty, chosen from RIDGE_FACTORS by the
        squared error on a held-out HOLDOUT_FRACTION of the items (seeded), then refit on all of them."""
        z, y = z.double(), y.double().to(z.device)
        self.mean, std = z.mean(dim=0), z.std(dim=0, correction=0)
        self.std = torch.where(std > 0, std, torch.ones_like(std))  # a dimension constant over the sample: left at 0
        self.y_mean = y.mean(dim=0)
        x, y = self.standardise(z), y - self.y_mean
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
        n_held = max(1, round(HOLDOUT_FRACTION * len(x)))
        held, fit = order[:n_held], order[n_held:]
        errors = torch.stack([(x[held] @ w - y[held]).pow(2).mean(dim=0) for w in ridge_path(x[fit], y[fit])])  # (F, T)
        self.factors = {name: RIDGE_FACTORS[int(errors[:, columns].mean(dim=1).argmin())]
                        for name, columns in groups.items()}
        chosen = sorted(set(self.factors.values()))
        refit = dict(zip(chosen, ridge_path(x, y, chosen)))
        self.weights = torch.zeros(x.shape[1], y.shape[1], dtype=x.dtype, device=x.device)
        for name, columns in groups.items():
            self.weights[:, columns] = refit[self.factors[name]][:, columns]

    def standardise(self, z):
        return (z.double().to(self.mean.device) - self.mean) / self.std

    def predict(self, z):
        """(N, D) latents -> (N, T) predicted targets."""
        return self.standardise(z) @ self.weights + self.y_mean


# ----------------------------------------------------------------------------
# scores

def average_ranks(scores):
    """1-based ranks of each column of scores (N, K), tied values sharing their average rank."""
    ordered = scores.T.contiguous().sort(dim=1).values  # (K, N)
    columns = scores.T.contiguous()
    below = torch.searchsorted(ordered, columns, side="left")
    up_to = torch.searchsorted(ordered, columns, side="right")
    return ((below + up_to + 1) / 2).T.double()


def word_aucs(scores, present):
    """ROC AUC of each column of scores (N, K) for the words' presence (N, K) bool, by the rank formula (Mann-Whitney
    U / (n1 n2), ties counted half) -> (AUC of each word (K,), NaN for a word in every or no caption; their mean;
    the mean's standard error at chance).

    The standard error is the mean's spread over random re-pairings of the items with their captions (a z that
    knows nothing), exact from the ranks: the sums of ranks of words j and k co-vary by
    sum_i r~_ij r~_ik * sum_i y~_ij y~_ik / (N - 1) (r~, y~: centred ranks and presence), which counts how alike
    the words are. For one word it is Hanley & McNeil's (1982) at AUC 0.5, sqrt((n1 + n2 + 1) / (12 n1 n2)).
    """
    present = present.to(scores.device)
    n1 = present.sum(dim=0).double()
    n2 = len(present) - n1
    judged = (n1 > 0) & (n2 > 0)
    ranks, y = average_ranks(scores[:, judged]), present[:, judged].double()
    n1, n2 = n1[judged], n2[judged]
    auc = torch.full((present.shape[1],), float("nan"), dtype=torch.float64, device=scores.device)
    auc[judged] = ((ranks * y).sum(dim=0) - n1 * (n1 + 1) / 2) / (n1 * n2)
    ranks, y = ranks - ranks.mean(dim=0), y - y.mean(dim=0)
    cov = (ranks.T @ ranks) * (y.T @ y) / max(len(y) - 1, 1)  # (K, K) of the rank sums, under re-pairing
    scale = 1 / (n1 * n2 * len(n1))  # from a word's rank sum to its share of the mean AUC
    return auc, auc[judged].mean().item(), (scale @ cov @ scale).sqrt().item()


def accuracy(scores, labels):
    """Share of the items with a known label (>= -1) whose highest score is at their label's column."""
    known = labels >= -1
    return (scores[known].argmax(dim=1) == labels[known]).double().mean().item()


class LatentProbe:
    """The probes of one run: their targets, taken once from the training sample (fit_*) and the validation split
    (val_*); fit_truths, val_truths: one truth dict or None per item, or None for data without ground truth."""

    def __init__(self, fit_tokens, fit_truths, val_tokens, val_truths, tokenizer, words=PROBE_WORDS, seed=0):
        self.seed = seed
        ids = content_words(fit_tokens, tokenizer, words)
        self.words = [tokenizer.itos[i] for i in ids]
        self.fit_words = word_presence(fit_tokens, len(tokenizer))[:, ids].cpu()
        self.val_words = word_presence(val_tokens, len(tokenizer))[:, ids].cpu()
        # a word's AUC needs validation captions with it and without it
        self.words_judged = bool((self.val_words.any(dim=0) & ~self.val_words.all(dim=0)).any())
        self.fields = {}  # name -> (classes, fit labels, val labels)
        truths = fit_truths or []
        self.with_truth = torch.tensor([t is not None for t in truths], dtype=torch.bool)
        for name, path in FIELDS.items():
            fit_values = [field_value(t, path) for t in truths if t is not None]
            classes = sorted({v for v in fit_values if v is not None}, key=str)
            val_labels = class_labels([field_value(t, path) for t in val_truths or []], classes)
            if classes and (val_labels >= -1).any():
                self.fields[name] = (classes, class_labels(fit_values, classes), val_labels)

    def chance(self):
        """What each probe scores on a z that holds nothing: 0.5 for the word AUC; for a field, the share of the
        validation items whose value is the training sample's most frequent one (a constant z's probe predicts it)."""
        levels = {}
        if self.words_judged:
            levels["probe_word_auc"] = 0.5
        for name, (classes, fit_labels, val_labels) in self.fields.items():
            majority = torch.bincount(fit_labels[fit_labels >= 0], minlength=len(classes)).argmax()
            known = val_labels >= -1
            levels[f"probe_{name}"] = (val_labels[known] == majority).double().mean().item()
        return levels

    def score(self, z_fit, z_val):
        """Fit the probes on z_fit (the training sample's latents, in the order of fit_tokens) and score them on z_val
        (the validation split's) -> {probe_word_auc, probe_word_auc_se (its standard error at chance, see
        word_aucs), probe_words_best and probe_words_worst (text: the 3 words z predicts best, and the 3 others it
        predicts worst, each with its AUC; among the words WORDS_SHOWN_MIN validation captions hold and lack, where
        any is: a word in two captions gets an extreme AUC by luck), probe_<field> (accuracy)}."""
        z_fit, z_val = z_fit.detach().float(), z_val.detach().float()
        results = {}
        if self.words_judged:
            ridge = Ridge(z_fit, self.fit_words, {"words": list(range(len(self.words)))}, self.seed)
            auc, mean, se = word_aucs(ridge.predict(z_val), self.val_words)
            counts = self.val_words.sum(dim=0)
            steady = (counts >= WORDS_SHOWN_MIN) & (len(self.val_words) - counts >= WORDS_SHOWN_MIN)
            shown = [(a, w) for a, w, s in zip(auc.tolist(), self.words, steady.tolist()) if s]
            ranked = sorted(shown or [(a, w) for a, w in zip(auc.tolist(), self.words) if not math.isnan(a)],
                            reverse=True)
            results.update(probe_word_auc=mean, probe_word_auc_se=se,
                           probe_words_best=", ".join(f"{w} {a:.2f}" for a, w in ranked[:3]),
                           probe_words_worst=", ".join(f"{w} {a:.2f}" for a, w in ranked[3:][::-1][:3]))
        if self.fields:
            targets, groups, start = [], {}, 0
            for name, (classes, fit_labels, _) in self.fields.items():
                groups[name] = list(range(start, start + len(classes)))
                start += len(classes)
                targets.append(torch.nn.functional.one_hot(fit_labels.clamp(min=0), len(classes)).double()
                               * (fit_labels >= 0)[:, None])  # an unknown value: no class to pull towards
            ridge = Ridge(z_fit[self.with_truth.to(z_fit.device)], torch.cat(targets, dim=1), groups, self.seed)
            predicted = ridge.predict(z_val).cpu()
            for name, (_, _, val_labels) in self.fields.items():
                results[f"probe_{name}"] = accuracy(predicted[:, groups[name]], val_labels)
        return results


def untrained_levels(chance, untrained):
    """{probe + UNTRAINED: its score on the untrained model's z} for the probes in chance (LatentProbe.chance's keys).
    A second reference beside chance: random features already separate much of what fills the picture (the quick
    encoder's untrained z reads the bundled set's main kind at 0.17-0.22, its majority share being 0.03), so a probe
    shows what training taught z only where it beats this level too."""
    return {name + UNTRAINED: untrained[name] for name in chance if name in untrained}


def ledoit_wolf(z):
    """(mean, covariance) of z (N, D) with the covariance shrunk towards a multiple of the identity by Ledoit and
    Wolf's estimate of the best amount (J. Multivariate Anal. 88, 2004; sklearn.covariance.LedoitWolf's formula):
    invertible however few items there are per dimension."""
    z = z.double()
    mean = z.mean(dim=0)
    x = z - mean
    n, d = x.shape
    cov = x.T @ x / n
    mu = cov.trace() / d
    delta = ((cov - mu * torch.eye(d, dtype=z.dtype, device=z.device)) ** 2).sum() / d
    beta = ((x ** 2).sum(dim=1) ** 2).sum() / n - (cov ** 2).sum()  # sum_k ||x_k x_k' - cov||^2 / n
    shrink = (min(beta.item() / n / d, delta.item()) / delta.item()) if delta > 0 else 1.0
    return mean, (1 - shrink) * cov + shrink * mu * torch.eye(d, dtype=z.dtype, device=z.device)


def invertible(cov):
    """cov with a floor under its diagonal (a millionth of its mean variance, at least 1e-12), so that a collapsed z
    (every image on one point: no spread at all) still gives a precision matrix."""
    d = cov.shape[0]
    return cov + (1e-6 * cov.trace().item() / d + 1e-12) * torch.eye(d, dtype=cov.dtype, device=cov.device)


class LatentReference:
    """Where the training images' z lie, to tell an image that looks like nothing the model was trained on.

    Fit on the z of training images (their mean and Ledoit-Wolf covariance); an image's novelty is its z's
    Mahalanobis distance from them. The threshold is the NOVELTY_QUANTILE of the validation images' distances: held
    back from training, they show how far an image of the same kind can lie. An image beyond it is 'unfamiliar'
    (about 1 in 100 validation images is, by construction). Saved in each checkpoint (state_dict) for sample.py.
    """

    def __init__(self, mean, precision, threshold):
        self.mean, self.precision, self.threshold = mean.double(), precision.double(), float(threshold)

    @classmethod
    def fit(cls, z_train, z_val, quantile=NOVELTY_QUANTILE):
        """-> the reference, or None where fewer than 2 training and 1 validation z are finite."""
        z_train, z_val = (z[torch.isfinite(z).all(dim=1)] for z in (z_train.detach().float(), z_val.detach().float()))
        if len(z_train) < 2 or not len(z_val):
            return None
        mean, cov = ledoit_wolf(z_train)
        reference = cls(mean, torch.linalg.inv(invertible(cov)), float("inf"))
        reference.threshold = torch.quantile(reference.distance(z_val), quantile).item()
        return reference

    def distance(self, z):
        """Mahalanobis distance (N,) of each row of z (N, D) from the training images' z."""
        x = z.detach().double().to(self.mean.device) - self.mean
        return ((x @ self.precision) * x).sum(dim=1).clamp(min=0).sqrt()

    def unfamiliar(self, z):
        """(N,) bool: which of z lie beyond the threshold."""
        return self.distance(z) > self.threshold

    def state_dict(self):
        return {"mean": self.mean.float().cpu(), "precision": self.precision.float().cpu(),
                "threshold": self.threshold}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["mean"], state["precision"], state["threshold"])


@torch.no_grad()
def image_latents(model, images_u8, batch_size=256, autocast=contextlib.nullcontext()):
    """z (N, latent_dim) of images_u8 (N, C, H, W) uint8 from the model's image encoder in eval mode, under the
    validation's autocast: what evaluate_split's forward pass gives as out["z"]."""
    was_training = model.training
    model.eval()
    z = []
    for i in range(0, len(images_u8), batch_size):
        with autocast:
            z.append(model.image_encoder(images_u8[i:i + batch_size].float() / 255).float())
    model.train(was_training)
    return torch.cat(z)
