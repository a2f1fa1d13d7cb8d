"""The one parser of a --device setting, for train_wandb.py, sample.py and benchmark.py."""

import re

import torch

DEVICE_NAMES = "'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'"


class DeviceError(ValueError):
    """A --device setting that names no usable device: the message says which and what to choose instead."""


def check_device_name(name):
    """DeviceError unless name is one of DEVICE_NAMES (checked with the other settings, before any device is used)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise DeviceError(f"--device={name}: choose 'auto', 'cpu', 'cuda' or 'cuda:N'")


def resolve_device(name):
    """-> the torch.device that name means on this machine, or DeviceError."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device={name}: CUDA is not available on this machine; use --device=cpu")
        if (device.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"--device={name}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device
