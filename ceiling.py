"""How legible are the bundled engravings' objects? Supervised classifiers trained on the images alone.

    python ceiling.py                                   # a small CNN at 64 px, 12 epochs
    python ceiling.py --model=encoder --image_size=64   # the quick preset's image encoder with a linear head
    python ceiling.py --image_size=128 --epochs=8
    python ceiling.py --channels=16,32,64,128 --convs=1    # a cheaper CNN: one convolution per stage

Each classifier predicts the main object's kind (cross-entropy) and which kinds are drawn (binary
cross-entropy per kind), from the image only, on the trainer's own split (val_fraction 0.1, seed 42). Per
epoch it prints the validation accuracy on the main kind beside its majority share, and the share of images
in which the kind it predicts is drawn at all (a caption that names that kind names something in the picture).
What a classifier reaches is the ceiling for what the multimodal model can learn about the objects from
these pixels: if none names the main kind well, the pictures, not the trainer, are the limit (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.engravings import KINDS, ensure_sample
from data.imagefolder import decode_images, read_metadata
from model_architecture_large import ImageEncoder, ModelConfig
from train_wandb import BUNDLED_DATA_DIR, split_indices

REPO_DIR = Path(__file__).absolute().parent


def load(data_dir, image_size):
    """-> (uint8 images (N, 3, S, S), main-kind ids (N,), kinds-present (N, K) floats) of the bundled set."""
    data_dir = Path(data_dir)
    rows = read_metadata(data_dir / "metadata.jsonl")
    images, kept, failed, _, _ = decode_images([data_dir / name for name, _, _ in rows], image_size,
                                               cache_dir=str(REPO_DIR / ".cache"))
    if failed or any(rows[i][2] is None for i in kept):
        raise SystemExit(f"{data_dir}: every item needs an image and a ground truth (the bundled set)")
    truths = [rows[i][2] for i in kept]
    main = torch.tensor([KINDS.index(t["main"]["kind"]) for t in truths])
    present = torch.zeros(len(truths), len(KINDS))
    for i, t in enumerate(truths):
        present[i, [KINDS.index(o["kind"]) for o in t["objects"]]] = 1.0
    return images, main, present


def cnn(channels=(32, 64, 128, 256), convs=2):
    """Stages of `convs` 3x3 conv + BatchNorm + ReLU, each followed by 2x2 max-pooling; global mean pool."""
    layers, c_in = [], 3
    for c in channels:
        for _ in range(convs):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), c_in


def channel_list(text):
    """'16,32,64' -> (16, 32, 64), for --channels."""
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        channels = ()
    if not channels or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive channel counts")
    return channels


def quick_encoder(image_size, conv_stem=False):
    """The quick preset's image encoder (ModelConfig.small with 16-pixel patches): image -> z."""
    cfg = ModelConfig.small(image_size=image_size, patch_size=16, latent_patch_dim=8, conv_stem=conv_stem)
    return ImageEncoder(cfg), cfg.latent_dim


class Classifier(nn.Module):
    def __init__(self, trunk, features):
        super().__init__()
        self.trunk = trunk
        self.main = nn.Linear(features, len(KINDS))
        self.present = nn.Linear(features, len(KINDS))

    def forward(self, images):
        h = self.trunk(images)
        return self.main(h), self.present(h)


@torch.no_grad()
def evaluate(model, images, main, present, batch_size=256):
    """-> (main-kind accuracy, share of images whose predicted main kind is drawn in them)."""
    model.eval()
    hits = drawn = 0
    for i in range(0, len(images), batch_size):
        logits, _ = model(images[i:i + batch_size].float() / 255)
        pred = logits.argmax(1)
        hits += (pred == main[i:i + batch_size]).sum().item()
        drawn += present[i:i + batch_size].gather(1, pred[:, None]).sum().item()
    model.train()
    return hits / len(images), drawn / len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("cnn", "encoder"), default="cnn")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--conv_stem", action="store_true", help="the encoder with the model's conv_stem")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--channels", type=channel_list, default=(32, 64, 128, 256),
                        help="the CNN's channels per stage, comma-separated (default 32,64,128,256)")
    parser.add_argument("--convs", type=int, default=2, help="the CNN's 3x3 convolutions per stage")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--data_dir", default=str(REPO_DIR / BUNDLED_DATA_DIR))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if Path(args.data_dir).resolve() == (REPO_DIR / BUNDLED_DATA_DIR).resolve():
        ensure_sample(args.data_dir)
    images, main_kind, present = load(args.data_dir, args.image_size)
    train, val = split_indices(len(images), 0.1, 42)
    torch.manual_seed(args.seed)
    if args.model == "cnn":
        trunk, features = cnn(args.channels, args.convs)
    else:
        trunk, features = quick_encoder(args.image_size, args.conv_stem)
    model = Classifier(trunk, features)
    steps = args.epochs * (len(train) // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.learning_rate, total_steps=steps)
    majority = torch.bincount(main_kind[train], minlength=len(KINDS)).argmax()
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}{' with conv_stem' * args.conv_stem} at {args.image_size} px, {params / 1e6:.2f}M "
          f"parameters; {len(train)} train / {len(val)} val items; majority share on val "
          f"{(main_kind[val] == majority).float().mean():.3f}", flush=True)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[i:i + args.batch_size]
            logits, presence = model(images[idx].float() / 255)
            loss = (F.cross_entropy(logits, main_kind[idx])
                    + F.binary_cross_entropy_with_logits(presence, present[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc, drawn = evaluate(model, images[val], main_kind[val], present[val])
        print(f"epoch {epoch:2d}  {time.perf_counter() - t0:6.0f} s  main kind {acc:.3f}  "
              f"predicted kind drawn {drawn:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
