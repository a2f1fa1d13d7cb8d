"""The command line: python -m data.engravings --out DIR [--num-items N] [--image-size S]."""

from __future__ import annotations

import argparse
import time

from .dataset import DEFAULT_IMAGE_SIZE, DEFAULT_NUM_ITEMS, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.engravings",
        description="Generate the procedural engraving dataset (PNG images + metadata.jsonl captions)."
    )
    parser.add_argument("--out", required=True, help="output directory (images/ and metadata.jsonl go here)")
    parser.add_argument("--num-items", type=int, default=DEFAULT_NUM_ITEMS,
                        help=f"number of images to generate (default {DEFAULT_NUM_ITEMS})")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help=f"side length of the square images in pixels (default {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default min(cpu_count, 4); 1 = in-process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = generate(args.out, num_items=args.num_items, image_size=args.image_size, seed=args.seed,
                   workers=args.workers, progress=not args.quiet)
    print(f"Wrote {args.num_items} engravings to {out} in {time.perf_counter() - t0:.1f}s.")
    return 0
