"""Use a checkpoint written by train_wandb.py: caption images, retrieve captions or images, reconstruct, evaluate.

    python sample.py --checkpoint=out/quick/best.pt --images=photos/                    # a greedy caption per image
    python sample.py --checkpoint=out/quick/best.pt --images=a.png --decode=beam --beam_size=5
    python sample.py --checkpoint=out/quick/best.pt --images=a.png --decode=sample --temperature=0.8 --seed=1
    python sample.py --checkpoint=out/quick/best.pt --images=photos/ --captions_from=data/bundled --top_k=5
    python sample.py --checkpoint=out/quick/best.pt --images=photos/ --query="a ship on the left"
    python sample.py --checkpoint=out/quick/best.pt --images=photos/ --reconstruct=recon.png
    python sample.py --checkpoint=out/quick/best.pt --evaluate=data/bundled --json=eval.json

Results go to stdout, one tab-separated line per result; warnings, the progress bar and errors go to stderr.
A bad argument, checkpoint or image folder is reported in one line (`error: ...`), exit status 2.
"""

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from checkpoints import CheckpointError, load_model
from data.imagefolder import IMAGE_EXTENSIONS, DataError, find_items, load_image, read_truths
from devices import DEVICE_NAMES, DeviceError, resolve_device
from durable import format_warning
from evaluation import baseline_split, evaluate_split, lower_is_better, missing_packages
from probes import image_latents

# ----------------------------------------------------------------------------
# arguments

class ConfigError(Exception):
    """A bad argument, device or checkpoint: reported in one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error here, instead of argparse's usage block
        raise ConfigError(f"{message} (see --help)")


def parse_args(argv):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a last.pt or best.pt written by train_wandb.py")
    p.add_argument("--images", help="an image file or a folder of images (searched recursively)")
    mode = p.add_mutually_exclusive_group()  # without one of these: caption each image
    mode.add_argument("--captions_from", metavar="DATA_DIR", help="rank the distinct captions of this collection")
    mode.add_argument("--query", help="rank the images for this text")
    mode.add_argument("--reconstruct", metavar="OUT.png", help="write originals above their reconstructions")
    mode.add_argument("--evaluate", metavar="DATA_DIR", help="every measure of evaluation.py on this collection")
    p.add_argument("--decode", choices=("greedy", "beam", "sample"), default="greedy", help="how captions are written")
    p.add_argument("--beam_size", type=int, default=5, help="prefixes kept per image with --decode=beam")
    p.add_argument("--temperature", type=float, default=1.0, help="logits are divided by this with --decode=sample")
    p.add_argument("--seed", type=int, default=0, help="seeds --decode=sample")
    p.add_argument("--top_k", type=int, default=5, help="results per query of --captions_from and --query")
    p.add_argument("--json", help="where --evaluate writes its results (default: beside the checkpoint)")
    p.add_argument("--batch_size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", default="auto", help=DEVICE_NAMES)
    args = p.parse_args(argv)
    if args.evaluate is None and args.images is None:
        raise ConfigError("--images=FILE_OR_FOLDER is needed (or --evaluate=DATA_DIR); see --help")
    for name in ("beam_size", "top_k", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}={getattr(args, name)}: must be at least 1")
    if not args.temperature > 0:
        raise ConfigError(f"--temperature={args.temperature}: must be positive")
    return args


def warn(message):
    tqdm.write(f"warning: {message}", file=sys.stderr)  # through tqdm, so a progress bar is not cut in two


# ----------------------------------------------------------------------------
# checkpoint and images

def describe(trained):
    """e.g. 'epoch 8 of training; best.pt is chosen by the lowest val loss_total (2.475 at epoch 8)'."""
    if trained.get("epoch") is None:
        return "epoch unknown"
    text = f"epoch {trained['epoch']} of training"
    metric, value = trained.get("best_metric"), trained.get("best_value")
    if metric and isinstance(value, (int, float)) and math.isfinite(value):
        how = "lowest" if lower_is_better(metric) else "best"
        text += f"; best.pt is chosen by the {how} val {metric} ({value:.4g} at epoch {trained.get('best_epoch')})"
    return text


def list_images(path):
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"--images={path}: no such file or folder")
    paths = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise DataError(f"--images={path}: no images in this folder ({' '.join(sorted(IMAGE_EXTENSIONS))})")
    return paths


def load_images(paths, size):
    """-> (uint8 tensor (n, 3, size, size), the paths that decoded); an unreadable image among several is
    skipped with a warning, unless none is readable."""
    arrays, kept = [], []
    for path in tqdm(paths, desc="Loading images", leave=False, disable=None):
        try:
            arrays.append(load_image(path, size))
            kept.append(path)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            if len(paths) == 1:
                raise DataError(f"{path}: unreadable image ({type(e).__name__})") from None
            warn(f"{path}: unreadable image ({type(e).__name__}); skipped")
    if not kept:
        raise DataError(f"none of the {len(paths)} images is readable (e.g. {paths[0]})")
    return torch.from_numpy(np.stack(arrays)), kept


def load_collection(data_dir):
    """-> (image+caption items of data_dir, {resolved image path: truth}); skipped items are warned about."""
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: no such folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = find_items(data_dir)
    for w in caught:
        warn(w.message)
    if not items:
        raise DataError(f"{data_dir}: no image+caption items (metadata.jsonl / metadata.csv with file_name,text, "
                        "or a .txt beside each image)")
    return items, read_truths(data_dir)


# ----------------------------------------------------------------------------
# decoding: greedy is model.generate_captions; beam search and sampling build on model.caption_decoder

@torch.no_grad()
def beam_search(model, z, bos_id, eos_id, beam_size):
    """Keep the beam_size most likely prefixes per latent (sum of token log-probabilities, no length
    penalty); a finished prefix keeps its score. -> (B, <= max_caption_len) ids of each best caption."""
    B, K, pad = z.shape[0], min(beam_size, model.cfg.vocab_size), model.cfg.pad_id
    z = z.repeat_interleave(K, dim=0)  # (B*K, D): beam k of latent b is row b*K + k
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=z.device)
    scores = torch.zeros(B, K, device=z.device)
    scores[:, 1:] = -math.inf  # the beams start identical: expand only the first
    done = torch.zeros(B * K, dtype=torch.bool, device=z.device)
    for _ in range(model.cfg.max_caption_len - 1):
        logp = model.caption_decoder(z, tokens)[:, -1].float().log_softmax(dim=-1)  # (B*K, V)
        logp[done] = -math.inf
        logp[done, pad] = 0.0  # a finished beam can only append <pad>, at no cost
        V = logp.shape[1]
        scores, flat = (scores[:, :, None] + logp.view(B, K, V)).view(B, K * V).topk(K, dim=1)  # (B, K)
        rows = (torch.arange(B, device=z.device)[:, None] * K + flat // V).view(-1)  # the beam each one extends
        next_token = (flat % V).view(-1)
        tokens = torch.cat([tokens[rows], next_token[:, None]], dim=1)
        done = done[rows] | (next_token == eos_id)
        if bool(done.all()):
            break
    best = scores.argmax(dim=1)
    return tokens.view(B, K, -1)[torch.arange(B, device=z.device), best]


@torch.no_grad()
def sample_captions(model, z, bos_id, eos_id, temperature, generator):
    """Draw each next token from softmax(logits / temperature). -> (B, <= max_caption_len) ids."""
    tokens = torch.full((z.shape[0], 1), bos_id, dtype=torch.long, device=z.device)
    done = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
    for _ in range(model.cfg.max_caption_len - 1):
        probs = F.softmax(model.caption_decoder(z, tokens)[:, -1].float() / temperature, dim=-1)
        next_token = torch.multinomial(probs, 1, generator=generator)[:, 0].masked_fill(done, model.cfg.pad_id)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        done |= next_token == eos_id
        if bool(done.all()):
            break
    return tokens


# ----------------------------------------------------------------------------
# the modes

def batches(images_u8, batch_size, desc):
    """Float batches in [0, 1] on the model's device, with a progress bar."""
    for i in tqdm(range(0, len(images_u8), batch_size), desc=desc, leave=False, disable=None):
        yield images_u8[i:i + batch_size].float() / 255


@torch.no_grad()
def embed_images(model, images_u8, batch_size):
    z = [model.image_encoder(x) for x in batches(images_u8, batch_size, "Encoding")]
    return F.normalize(torch.cat(z), dim=-1)


@torch.no_grad()
def embed_captions(model, tokens, batch_size):
    pad = model.cfg.pad_id
    embs = [model.caption_encoder(tokens[i:i + batch_size], pad) for i in range(0, len(tokens), batch_size)]
    return F.normalize(torch.cat(embs), dim=-1)


def warn_unfamiliar(reference, z, paths):
    """A warning for each image whose z lies farther from the training images' than NOVELTY_QUANTILE of the
    validation images' did (probes.LatentReference): its caption names what the model knows, not what it shows.
    -> how many were."""
    if reference is None:
        return 0
    distance = reference.distance(z)
    unfamiliar = (distance > reference.threshold).tolist()
    for path, d, odd in zip(paths, distance.tolist(), unfamiliar):
        if odd:
            warn(f"{path}: looks like nothing the model was trained on (its z lies {d:.1f} from the training "
                 f"images', beyond {reference.threshold:.1f}, where 99% of the validation images lie); its caption "
                 "is a guess")
    return sum(unfamiliar)


@torch.no_grad()
def write_captions(model, tokenizer, images_u8, paths, args, reference=None):
    bos, eos = tokenizer.BOS, tokenizer.EOS
    generator = torch.Generator(device=images_u8.device).manual_seed(args.seed)
    unfamiliar = 0
    for start, images in zip(range(0, len(paths), args.batch_size), batches(images_u8, args.batch_size, "Captioning")):
        z = model.image_encoder(images)  # once a batch: the reference and the decoding read the same latents
        unfamiliar += warn_unfamiliar(reference, z, paths[start:start + len(images)])
        if args.decode == "greedy":
            ids = model.captions_from_latents(z, bos, eos)
        elif args.decode == "beam":
            ids = beam_search(model, z, bos, eos, args.beam_size)
        else:
            ids = sample_captions(model, z, bos, eos, args.temperature, generator)
        for path, row in zip(paths[start:], ids.tolist()):
            print(f"{path}\t{tokenizer.decode(row)}")
    if reference is None:
        warn(f"{args.checkpoint} holds no latent reference (written before its first validation, or by an older "
             "version): unfamiliar images are not flagged")
    elif unfamiliar:
        warn(f"{unfamiliar} of {len(paths)} images look like nothing the model was trained on")


def rank_captions(model, tokenizer, images_u8, paths, args):
    """The top_k distinct captions of a collection for each image, by cosine of z and caption embedding."""
    items, _ = load_collection(args.captions_from)
    captions = list(dict.fromkeys(text for _, text in items))  # distinct, in collection order
    max_len = model.cfg.max_caption_len
    tokens = torch.tensor([tokenizer.encode(c, max_len)[0] for c in captions], device=images_u8.device)
    similarity = embed_images(model, images_u8, args.batch_size) @ embed_captions(model, tokens, args.batch_size).T
    scores, best = similarity.topk(min(args.top_k, len(captions)), dim=1)
    for path, row_scores, row in zip(paths, scores.tolist(), best.tolist()):
        for score, j in zip(row_scores, row):
            print(f"{path}\t{score:.4f}\t{captions[j]}")


def rank_images(model, tokenizer, images_u8, paths, args):
    """The top_k images for a text query."""
    words = tokenizer.split(args.query)
    unknown = [w for w in words if w not in tokenizer.stoi]
    if len(unknown) == len(words):
        raise ConfigError(f"--query={args.query!r}: none of its words is in the checkpoint's vocabulary")
    if unknown:
        warn(f"--query: words not in the vocabulary, read as <unk>: {' '.join(unknown)}")
    ids, truncated = tokenizer.encode(args.query, model.cfg.max_caption_len)
    if truncated:
        warn(f"--query: longer than max_caption_len={model.cfg.max_caption_len} tokens; cut")
    query = embed_captions(model, torch.tensor([ids], device=images_u8.device), 1)
    similarity = (embed_images(model, images_u8, args.batch_size) @ query.T)[:, 0]  # (N,)
    scores, best = similarity.topk(min(args.top_k, len(paths)))
    for score, i in zip(scores.tolist(), best.tolist()):
        print(f"{paths[i]}\t{score:.4f}")


def reconstruction_grid(originals, recons, columns=8):
    """uint8 (N, 3, S, S) arrays -> one PIL image: rows of up to `columns` originals, each above their
    reconstructions; blank cells are white."""
    n, _, s, _ = originals.shape
    rows, cols = math.ceil(n / columns), min(n, columns)
    grid = np.full((2 * rows * s, cols * s, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[2 * r * s:(2 * r + 1) * s, c * s:(c + 1) * s] = originals[i].transpose(1, 2, 0)
        grid[(2 * r + 1) * s:(2 * r + 2) * s, c * s:(c + 1) * s] = recons[i].transpose(1, 2, 0)
    return Image.fromarray(grid)


@torch.no_grad()
def write_reconstructions(model, images_u8, paths, args):
    batched = batches(images_u8, args.batch_size, "Reconstructing")
    recons = [model.image_decoder(model.image_encoder(x)) for x in batched]
    recons_u8 = (torch.cat(recons).float().clamp(0, 1) * 255).round().to(torch.uint8)
    grid = reconstruction_grid(images_u8.cpu().numpy(), recons_u8.cpu().numpy())
    try:
        grid.save(args.reconstruct)
    except (OSError, ValueError) as e:  # a missing folder, an unknown extension
        raise ConfigError(f"--reconstruct={args.reconstruct}: cannot write it ({e})") from None
    print(f"Wrote {args.reconstruct}: {len(paths)} images, each above its reconstruction")


def evaluate(model, tokenizer, trained, args, device, reference=None):
    missing = missing_packages()
    if missing:
        raise ConfigError(missing)
    items, truth_of = load_collection(args.evaluate)
    images_u8, kept = load_images([path for path, _ in items], model.cfg.image_size)
    caption_of = dict(items)
    tokens = torch.tensor([tokenizer.encode(caption_of[path], model.cfg.max_caption_len)[0] for path in kept])
    truths = [truth_of.get(Path(path).resolve()) for path in kept]
    images_u8, tokens = images_u8.to(device), tokens.to(device)
    metrics = evaluate_split(model, images_u8, tokens, tokenizer, truths=truths, batch_size=args.batch_size)
    # what each measure gives for a model that learned nothing (the folder's own mean image as every reconstruction)
    baseline = baseline_split(images_u8, tokens, tokenizer, truths, latent_dim=model.cfg.latent_dim)
    # the share of the folder unlike the training images (probes.LatentReference): about 0.01 on held-back images
    unfamiliar = None if reference is None else reference.unfamiliar(image_latents(model, images_u8)).float().mean()
    print(f"{args.checkpoint} ({describe(trained)}) on {args.evaluate}: {len(kept)} items")
    print(f"  {'measure':<20} {'value':>9} {'baseline':>9}")
    for name, value in metrics.items():
        print(f"  {name:<20} {value:>9.4f}" + (f" {baseline[name]:>9.4f}" if name in baseline else ""))
    if unfamiliar is not None:
        print(f"  unfamiliar: {unfamiliar:.4f} of the images lie beyond the checkpoint's latent reference (about 0.01 "
              "of images like its validation split do)")
    out = Path(args.json) if args.json else Path(args.checkpoint).with_suffix(".eval.json")
    result = {"checkpoint": str(args.checkpoint), **trained, "data_dir": str(args.evaluate), "num_items": len(kept),
              "metrics": metrics, "baseline": baseline,
              "unfamiliar": None if unfamiliar is None else unfamiliar.item()}
    try:
        out.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as e:
        raise ConfigError(f"--json={out}: cannot write it ({e.strerror})") from None
    print(f"Wrote {out}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = format_warning  # one line per warning, as in train_wandb.py
    try:
        device = resolve_device(args.device)
        model, tokenizer, trained, reference = load_model(args.checkpoint, device)
    except CheckpointError as e:
        raise ConfigError(f"--checkpoint={e}") from None
    if args.evaluate:
        return evaluate(model, tokenizer, trained, args, device, reference)
    images_u8, paths = load_images(list_images(args.images), model.cfg.image_size)
    images_u8 = images_u8.to(device)
    if args.captions_from:
        rank_captions(model, tokenizer, images_u8, paths, args)
    elif args.query is not None:
        rank_images(model, tokenizer, images_u8, paths, args)
    elif args.reconstruct:
        write_reconstructions(model, images_u8, paths, args)
    else:
        write_captions(model, tokenizer, images_u8, paths, args, reference)


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DeviceError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
