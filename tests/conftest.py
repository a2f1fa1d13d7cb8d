"""What the tests share: the project's folder on sys.path, a W&B environment free of the shell's settings, and the
small engraving collections they train on, two reported runs, and the Config fields read from the source."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the tests import its modules

# W&B variables that choose a run's mode, server, login, project or run: the tests set the ones they need
WANDB_ENV = ("WANDB_MODE", "WANDB_BASE_URL", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_PROJECT",
             "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_SERVICE")


@pytest.fixture(autouse=True, scope="session")
def no_wandb_env_from_the_shell():
    """No test, and no process a test starts, sees the WANDB_ENV variables of the shell that runs pytest."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in WANDB_ENV:
            monkeypatch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def no_wandb_env_left_behind():
    """Nor the ones an earlier test left. wandb sets WANDB_SERVICE in the environment of a process that starts its
    service (pytest itself, after an in-process W&B test); a training subprocess that inherited it would log through
    that service, which outlives the child and, after a kill, keeps its run id open."""
    yield
    for name in WANDB_ENV:
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def make_engravings(tmp_path_factory):
    """make_engravings(num_items, image_size) -> a folder of the generator's collection (seed 0) at that size, written
    once a session and shared by every test that asks for the same size: read it, write nothing into it."""
    from data.engravings import generate

    made = {}

    def make(num_items, image_size):
        if (num_items, image_size) not in made:
            folder = tmp_path_factory.mktemp(f"engravings_{num_items}_{image_size}px")
            made[num_items, image_size] = generate(folder, num_items=num_items, image_size=image_size, seed=0,
                                                   workers=1, progress=False)
        return made[num_items, image_size]

    return make


@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared 2-core machine a second busy process stalls two-thread OpenMP
    regions (use with pytestmark = pytest.mark.usefixtures("one_thread"))."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reported(tmp_path_factory):
    """Two reported runs that differ only in learning_rate (and out_dir); run_b reaches the lower loss."""
    from health_rows import INFO, RUN_CONFIG, history, observe, val_rows
    from report import write_report

    base = tmp_path_factory.mktemp("runs")
    for name, lr, scale in (("run_a", 0.001, 1.0), ("run_b", 0.0005, 0.9)):
        rows = history()
        for row in rows:
            for key in ("train/loss_total", "val/loss_total"):
                if key in row:
                    row[key] *= scale
        config = {**RUN_CONFIG, "learning_rate": lr, "out_dir": f"out/{name}"}
        best = min(r["val/loss_total"] for r in val_rows(rows))
        monitor, _ = observe(rows, run_config=config)
        write_report(base / name, rows, monitor, {**INFO, "config": config, "best_val_loss": best})
    return base


@pytest.fixture(scope="session")
def config_annotations():
    """Config and WandBConfig fields of train_wandb.py -> annotation, read from the source (no torch import)."""
    import ast

    tree = ast.parse((Path(__file__).resolve().parents[1] / "train_wandb.py").read_text())
    return {node.target.id: ast.unparse(node.annotation)
            for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name in ("Config", "WandBConfig")
            for node in cls.body if isinstance(node, ast.AnnAssign)}


@pytest.fixture(scope="session")
def assemble_trainer(make_engravings):
    """assemble_trainer(out_dir, logger, *overrides, device="cpu") -> a Trainer on the 40-item collection at 32 px,
    built by main()'s own builders (quick preset, batch 8, no decode cache)."""
    import torch

    import train_wandb

    def assemble(out_dir, logger, *overrides, device="cpu"):
        cfg, wcfg, health = train_wandb.parse_args(
            ["--preset=quick", "--image_size=32", "--batch_size=8", f"--data_dir={make_engravings(40, 32)}",
             "--cache_dir=", f"--out_dir={out_dir}", *overrides])
        device = torch.device(device)
        torch.manual_seed(cfg.seed)
        data = train_wandb.build_data(cfg, device)
        model = train_wandb.build_model(cfg, data.tokenizer, device)
        return train_wandb.build_trainer(cfg, wcfg, health, model, data, device, logger)

    return assemble
