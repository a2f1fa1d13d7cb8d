"""Checkpoints in one place: the background writer, save, the best copy, load, and the
checks that a resume continues the same run.

    checkpoints = Checkpoints(out_dir, every_minutes=30, enabled=rank == 0)
    checkpoints.save(trainer.state_dict())        # out_dir/last.pt, written on a background thread
    checkpoints.mark_best()                       # out_dir/best.pt becomes the same file as last.pt
    state = load_checkpoint(path)                 # on resume; check_resume(state, ...) first

A checkpoint is self-describing: model, optimizer, scheduler, RNG states, the position inside the epoch,
tokenizer, the resolved configuration, the model's configuration, the history of logged rows and the W&B run id.
"""

import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import torch

from durable import write_atomic
from evaluation import better
from model_architecture_large import ModelConfig, MultimodalModel
from probes import LatentReference
from tokenizer import CaptionTokenizer


class CheckpointError(Exception):
    """A checkpoint cannot be used for this run: reported in one line, exit status 2."""


def save_atomic(obj, path, shared=False):
    """torch.save(obj) to path through durable.write_atomic (temporary file, fsync, rename). torch writes into a
    Python file that is closed whatever happens, so a failed write frees its disk space at once, and a full disk
    raises the file system's own error (OSError: No space left on device), not torch's RuntimeError ("unexpected
    pos ..."), which names no cause. shared: as in write_atomic."""
    def write(tmp):
        with open(tmp, "wb") as f:
            try:
                torch.save(obj, f)
            except RuntimeError as e:
                if isinstance(e.__context__, OSError):  # the file's write failed: that error says why
                    raise e.__context__ from None
                raise

    return write_atomic(path, write, shared)


def load_checkpoint(path):
    """A checkpoint written by Checkpoints.save, on the CPU; a missing or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this model (no model or model_config)")
    return state


def load_model(path, device="cpu"):
    """-> (the model of a train_wandb.py checkpoint, in eval mode on device; its tokenizer; what the weights are:
    {epoch, step, best_metric, best_value, best_epoch}, each None where the checkpoint does not say; its
    probes.LatentReference, None in a checkpoint written before any validation or before it was kept), or a
    CheckpointError that names the file and what is wrong with it. Reads a last.pt, a best.pt or a model Artifact's
    model.pt alike."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holding objects weights_only refuses to unpickle
        raise CheckpointError(f"{path}: not a checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or not {"model", "model_config", "tokenizer"} <= ckpt.keys():
        raise CheckpointError(f"{path}: not a checkpoint of this model (no model, model_config, tokenizer)")
    try:
        model = MultimodalModel(ModelConfig.from_saved(ckpt["model_config"]))
        tokenizer = CaptionTokenizer.from_state_dict(ckpt["tokenizer"])
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:
        # load_state_dict lists every mismatched tensor over many lines: the first says enough
        detail = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise CheckpointError(f"{path}: its weights do not fit its model_config ({detail[:200]})") from None
    if len(tokenizer) != model.cfg.vocab_size:
        raise CheckpointError(f"{path}: its tokenizer has {len(tokenizer)} tokens, the model {model.cfg.vocab_size}")
    trained = {"epoch": ckpt.get("epoch"), "step": ckpt.get("step"), **saved_best(ckpt)}
    reference = LatentReference.from_state_dict(ckpt["latent_reference"]) if ckpt.get("latent_reference") else None
    return model.to(device).eval(), tokenizer, trained, reference


def check_model_config(state, model_config):
    """A resume must build the same model: raise CheckpointError naming the fields that differ."""
    saved = ModelConfig.saved_fields(state["model_config"])  # a checkpoint from before a field existed
    changed = [k for k, v in model_config.items() if saved.get(k) != v]
    if changed:
        raise CheckpointError(f"--resume=True: the checkpoint's model differs in {', '.join(changed)}; "
                              "use the same model fields or another out_dir")


# Settings a resume must repeat: they decide the split, the batches (and the position saved inside the epoch) or
# what the data is. A change is an error, whatever --resume_changes says.
SAME_DATA = ("data_dir", "max_items", "val_fraction", "seed", "batch_size", "image_size", "max_caption_len",
             "world_size", "data_fingerprint")
# Settings of the optimisation: a change makes the resumed run differ from one never stopped, so it is an error
# unless named in --resume_changes, which continues with the new value from the current step on.
SAME_OPTIMISATION = ("num_epochs", "max_steps", "early_stopping_patience", "learning_rate", "weight_decay",
                     "warmup_fraction", "warmup_min_steps", "min_lr_fraction", "grad_clip", "image_loss_weight",
                     "caption_loss_weight", "alignment_loss_weight", "precision", "contrastive_negatives")


def check_resume(state, config, allowed=()):
    """Compare the checkpoint's configuration with this run's. -> {field: (saved, new)} of the allowed changes.

    Raises CheckpointError naming every field that would silently break exactness: data, split and batch
    settings always; optimisation settings unless listed in `allowed` (--resume_changes)."""
    saved = state.get("config", {})
    chosen_by, choose_by = saved.get("best_metric", "loss_total"), config.get("best_metric", "loss_total")
    if chosen_by != choose_by:
        raise CheckpointError(f"--resume=True: best.pt holds the best val {chosen_by} so far, not the best "
                              f"{choose_by}; resume with --best_metric={chosen_by}, or start a new run in another "
                              "out_dir")
    changed = {k: (saved.get(k), config.get(k)) for k in SAME_DATA + SAME_OPTIMISATION
               if k in saved and saved.get(k) != config.get(k)}
    fixed = [k for k in changed if k in SAME_DATA]
    if fixed:
        what = ", ".join(f"{k} ({changed[k][0]!r} -> {changed[k][1]!r})" for k in fixed)
        raise CheckpointError(f"--resume=True: the checkpoint was trained with other data settings: {what}; "
                              "repeat them, or start a new run in another out_dir")
    refused = [k for k in changed if k not in allowed]
    if refused:
        what = ", ".join(f"{k} ({changed[k][0]!r} -> {changed[k][1]!r})" for k in refused)
        raise CheckpointError(f"--resume=True: settings differ from the checkpoint's: {what}; repeat them, or "
                              f"continue with the new values from here on with --resume_changes={','.join(refused)}")
    return changed


def parameters_finite(model):
    """Are all weights finite? One host sync; called before a save, never per step."""
    return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())


class BestCheckpoint:
    """The run's one record of its best validation results: which epoch best.pt holds, the one with the best value
    of `metric` so far (a val loss, lowest best, or a measure: evaluation.better says which way each improves), and
    the lowest val loss_total so far (lowest_loss: the run's best_val_loss, whatever metric chooses best.pt)."""

    def __init__(self, metric="loss_total"):
        self.metric, self.value, self.epoch = metric, None, 0  # epoch 0: no best yet
        self.lowest_loss = math.inf

    def offer(self, epoch, val):
        """An epoch's validation results {name: value}. -> whether best.pt should now hold this epoch (a value
        that is missing or not finite never is)."""
        if val.get("loss_total", math.inf) < self.lowest_loss:
            self.lowest_loss = val["loss_total"]
        value = val.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        if self.value is not None and not better(self.metric, value, self.value):
            return False
        self.value, self.epoch = float(value), epoch
        return True

    def out_of_patience(self, epoch, patience):
        """Early stopping: have `patience` epochs up to `epoch` passed since the best one (since the start, when
        no epoch had a value)? Never with patience 0."""
        return patience > 0 and epoch - self.epoch >= patience

    def summary(self):
        """The run summary's keys (and the checkpoint's): best_epoch is the epoch best.pt holds."""
        return {"best_metric": self.metric, "best_value": self.value, "best_epoch": self.epoch}

    def state_dict(self):
        return {**self.summary(), "best_val_loss": self.lowest_loss}

    def load_state_dict(self, state):
        """From a checkpoint (see saved_best)."""
        self.lowest_loss = state["best_val_loss"]
        saved = saved_best(state)
        self.epoch, value = saved["best_epoch"], saved["best_value"]
        self.value = float(value) if value is not None and math.isfinite(value) else None


def saved_best(state):
    """A checkpoint's {best_metric, best_value, best_epoch}, each None where it does not say. One written before
    best_metric existed chose best.pt by the lowest val loss_total, its best_val_loss."""
    if "best_metric" not in state and "best_val_loss" in state:
        return {"best_metric": "loss_total", "best_value": state["best_val_loss"],
                "best_epoch": state.get("best_epoch")}
    return {key: state.get(key) for key in ("best_metric", "best_value", "best_epoch")}


class Checkpoints:
    """Saves and copies the run's checkpoints in out_dir (rank 0 only: the others get enabled=False)."""

    def __init__(self, out_dir, every_minutes=0.0, enabled=True):
        self.out_dir = Path(out_dir)
        self.every_minutes, self.enabled = every_minutes, enabled
        self.saved_at = time.monotonic()  # when last.pt was last written
        self.writer = CheckpointWriter()

    @property
    def last(self):
        return self.out_dir / "last.pt"

    def due(self):
        """Is a timed mid-epoch save due (checkpoint_every minutes since the last save)?"""
        return bool(self.every_minutes) and time.monotonic() - self.saved_at > 60 * self.every_minutes

    def save(self, state, model):
        """Write out_dir/last.pt atomically, in the background: the caller waits only for the state's copy to
        host memory. A model with non-finite weights is never saved (the previous last.pt is kept)."""
        self.saved_at = time.monotonic()
        if not self.enabled:
            return False
        if not parameters_finite(model):
            print(f"warning: the weights are not finite at step {state['step']}; {self.last} keeps the last finite "
                  "state", file=sys.stderr)
            return False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer.submit(state, self.last)
        return True

    def mark_best(self):
        """out_dir/best.pt becomes the same file as last.pt, without serialising the state again: a hard
        link (the full model's checkpoint is about 1 GB), or a copy where links are not supported. The next
        save replaces last.pt by a new file, so best.pt keeps this content."""
        if not self.enabled:
            return
        self.writer.wait()  # last.pt must be complete on disk

        def link(tmp):
            try:
                os.link(self.last, tmp)
            except OSError:
                shutil.copyfile(self.last, tmp)

        write_atomic(self.out_dir / "best.pt", link)

    def wait(self):
        self.writer.wait()


class CheckpointWriter:
    """Saves checkpoints on a background thread, so training does not wait for the disk (the full model's
    state with AdamW's moments is about 1 GB, seconds to write; torch.save releases the GIL while writing).

    `submit` snapshots the state into host buffers first, the only part the caller waits for; the buffers
    are kept and reused by the next save of the same shapes (a fresh 1 GB allocation costs more than the
    copy itself), pinned when the tensors live on a GPU. The thread then writes it with save_atomic (a
    temporary file, fsync, rename), so a crash or a power loss at any moment leaves the previous file whole,
    and a failed write leaves no temporary file. One write is in flight at a time. The
    thread is not a daemon: a normal exit waits for it."""

    def __init__(self):
        self.thread, self.error = None, None
        self.buffers = []  # host copies of the last snapshot's tensors, in traversal order

    def submit(self, state, path):
        self.wait()
        used = []
        snapshot = self._snapshot(state, iter(self.buffers), used)
        self.buffers = used
        self.thread = threading.Thread(target=self._write, args=(snapshot, Path(path)), name="checkpoint-writer")
        self.thread.start()

    def _snapshot(self, obj, old, used):
        """A copy of a nested state dict in which every tensor is a host copy that training cannot change."""
        if isinstance(obj, torch.Tensor):
            buffer = next(old, None)
            if buffer is None or buffer.shape != obj.shape or buffer.dtype != obj.dtype:
                buffer = torch.empty(obj.shape, dtype=obj.dtype, pin_memory=obj.is_cuda)
            used.append(buffer.copy_(obj.detach()))
            return buffer
        if isinstance(obj, dict):
            return {k: self._snapshot(v, old, used) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self._snapshot(v, old, used) for v in obj)
        return obj

    def _write(self, state, path):
        try:
            save_atomic(state, path)
        except Exception as e:  # raised again in the training thread by wait()
            self.error = e

    def wait(self):
        """Block until the write in flight is on disk; a failed write raises its error here."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error

