"""W&B the way wandb does it: the mode decision asks wandb's own settings (settings files, netrc, WANDB_*
variables) and names where its answer came from; --log_model uploads lean weights when its mode says so.

Nothing here touches the network: the stand-in server https://wandb.example.com is never contacted (the
reachability probe is replaced), and the real probe is tried only on a closed port of this machine."""
import socket
import time

import pytest
import torch
import wandb

import logger
import train_wandb
from logger import RunLogger

HOST = "https://wandb.example.com"
KEY = "k" * 40  # a well-formed stand-in API key


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def wandb_home(tmp_path, monkeypatch):
    """A home of its own for wandb: global settings in config/, the workspace settings in work/wandb/, a netrc,
    and no W&B variables from the environment (conftest.py). -> (global settings file, workspace settings file,
    netrc)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    (tmp_path / "config").mkdir()
    (tmp_path / "work" / "wandb").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    wandb.teardown()  # wandb reads its settings once per process: start from a fresh singleton, and end with one
    yield tmp_path / "config" / "settings", tmp_path / "work" / "wandb" / "settings", tmp_path / "netrc"
    wandb.teardown()


@pytest.fixture
def probe(monkeypatch):
    """The reachability probe, replaced: records the servers asked about and answers `probe.answer`."""
    class Probe:
        answer, asked = True, []

        def __call__(self, url, timeout=5.0):
            self.asked.append(url)
            return self.answer

    fake = Probe()
    fake.asked = []
    monkeypatch.setattr(logger, "server_reachable", fake)
    return fake


def write_settings(path, **values):
    path.write_text("[default]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))


def write_netrc(path, machine, key=KEY):
    path.write_text(f"machine {machine}\n  login user\n  password {key}\n")
    path.chmod(0o600)


def test_a_self_hosted_login_is_asked_of_wandb_and_named(wandb_home, probe, capsys):
    global_settings, _, netrc = wandb_home
    write_settings(global_settings, base_url=HOST)  # what `wandb login --host https://wandb.example.com` writes
    write_netrc(netrc, "wandb.example.com")  # ... with the key under that host
    mode, why = logger.resolve_wandb_mode("auto")
    assert mode == "online" and probe.asked == [HOST]
    assert why == (f"logged in to {HOST} (base_url in {global_settings}, from `wandb login --host`), "
                   f"API key in {netrc}")
    assert KEY not in why + "".join(capsys.readouterr())


def test_a_server_that_does_not_answer_gives_an_offline_run_that_names_it(wandb_home, probe):
    global_settings, _, netrc = wandb_home
    write_settings(global_settings, base_url=HOST)
    write_netrc(netrc, "wandb.example.com")
    probe.answer = False
    mode, why = logger.resolve_wandb_mode("auto")
    assert mode == "offline" and why.startswith(f"the W&B server {HOST} (base_url in {global_settings}")
    assert "did not answer" in why


def test_a_key_for_another_host_is_not_a_login_to_this_one(wandb_home, probe):
    global_settings, _, netrc = wandb_home
    write_settings(global_settings, base_url=HOST)
    write_netrc(netrc, "api.wandb.ai")
    mode, why = logger.resolve_wandb_mode("auto")
    assert mode == "offline" and probe.asked == []  # not logged in: the server is not even asked
    assert why.startswith(f"not logged in to {HOST} ") and f"run `wandb login --host {HOST}`" in why


def test_mode_offline_in_the_settings_file_gives_an_offline_run_even_when_logged_in(wandb_home, probe):
    global_settings, workspace_settings, netrc = wandb_home
    write_settings(global_settings, base_url=HOST)
    write_netrc(netrc, "wandb.example.com")
    write_settings(workspace_settings, mode="offline")  # what `wandb offline` writes
    mode, why = logger.resolve_wandb_mode("auto")
    assert (mode, probe.asked) == ("offline", [])
    assert why == f"mode = offline in the settings file {workspace_settings}; --mode=online overrides it"


def test_an_explicit_mode_beats_the_settings_file(wandb_home, probe):
    _, workspace_settings, _ = wandb_home
    write_settings(workspace_settings, mode="offline")
    assert logger.resolve_wandb_mode("online") == ("online", "mode=online")


def test_environment_variables_and_identity_tokens_are_wandbs_logins_too(wandb_home, probe, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_BASE_URL", HOST)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    mode, why = logger.resolve_wandb_mode("auto")
    assert mode == "online" and why == f"logged in to {HOST} (WANDB_BASE_URL), API key from WANDB_API_KEY"
    monkeypatch.delenv("WANDB_API_KEY")
    token = tmp_path / "token.jwt"
    token.write_text("header.payload.signature")
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(token))
    assert logger.resolve_wandb_mode("auto") == ("online", f"logged in to {HOST} (WANDB_BASE_URL), identity token "
                                                           f"in {token}")


def test_the_real_probe_gives_up_at_once_on_a_port_nobody_listens_on():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]  # closed again below: connecting is refused at once
    start = time.monotonic()
    assert not logger.server_reachable(f"http://127.0.0.1:{port}", timeout=5.0)
    assert time.monotonic() - start < 2


# -- what a run logs: the step axis and the derived config ------------------------------------------------------

class FakeRun:
    """Stands in for a W&B run: records define_metric, config, and log_artifact calls with the file uploaded."""

    id = "fake01"

    def __init__(self):
        self.metrics, self.config_updates, self.artifacts = [], [], []
        run = self

        class Config:
            def update(self, values, allow_val_change=False):
                run.config_updates.append((values, allow_val_change))

        self.config = Config()

    def define_metric(self, name, **kwargs):
        self.metrics.append((name, kwargs))

    def log(self, row):
        pass

    def alert(self, **kwargs):
        pass

    @property
    def summary(self):
        class Summary:
            def update(self, values):
                pass
        return Summary()

    def log_artifact(self, artifact, aliases):
        state = torch.load(artifact.manifest.entries["model.pt"].local_path, map_location="cpu", weights_only=True)
        self.artifacts.append((artifact.name, artifact.type, sorted(aliases), state, artifact.ttl))


def test_every_metric_is_plotted_against_global_step_and_the_per_prefix_summaries_stay():
    run = FakeRun()
    RunLogger(run, "offline")
    assert ("*", {"step_metric": "global_step"}) in run.metrics  # gradients/, report/, charts/ included
    assert ("val/loss_total", {"summary": "min"}) in run.metrics
    assert ("val/i2t_r1", {"summary": "max,last"}) in run.metrics


def test_derived_facts_go_to_the_run_config_and_may_change_on_resume():
    run = FakeRun()
    RunLogger(run, "offline").add_config({"parameters": 5, "total_steps": 10})
    assert run.config_updates == [({"parameters": 5, "total_steps": 10}, True)]


# -- --log_model: what each mode uploads ------------------------------------------------------------------------

def fit_with(assemble_trainer, out_dir, log_model, best_epochs, monkeypatch):
    """Three epochs of a tiny Trainer, assembled as main() does, logging to a FakeRun; the epochs in
    `best_epochs` are the ones best.pt takes. -> the FakeRun."""
    monkeypatch.setenv("WANDB_DATA_DIR", str(out_dir / "wandb-data"))  # wandb stages artifact files here
    run = FakeRun()
    run_logger = RunLogger(run, "offline", 7)
    monkeypatch.setattr(run_logger, "wants_media", False)
    trainer = assemble_trainer(out_dir, run_logger, "--num_epochs=3", "--mode=offline", f"--log_model={log_model}",
                               "--model_ttl_days=7", "--checkpoint_every=0")

    def offer(epoch, val):  # best.pt takes the scripted epochs
        if epoch in best_epochs:
            trainer.best.value, trainer.best.epoch = val["loss_total"], epoch
        return epoch in best_epochs

    monkeypatch.setattr(trainer.best, "offer", offer)
    trainer.fit()
    return run


@pytest.mark.parametrize("log_model, uploads", [
    ("off", []),
    ("all", [(1, ["best", "epoch-1", "latest"]), (2, ["epoch-2", "latest"]), (3, ["epoch-3", "latest"])]),
    ("best", [(1, ["best", "epoch-1", "latest"])]),
    ("end", [(1, ["best"]), (3, ["latest"])]),  # best.pt's weights first: W&B moves `latest` to the newest
])
def test_each_log_model_mode_uploads_lean_weights_when_it_says(assemble_trainer, tmp_path, monkeypatch, log_model,
                                                               uploads):
    run = fit_with(assemble_trainer, tmp_path, log_model, best_epochs={1}, monkeypatch=monkeypatch)
    assert [(state["epoch"], aliases) for _, _, aliases, state, _ in run.artifacts] == uploads
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (best["epoch"], last["epoch"]) == (1, 3)
    for name, kind, _, state, ttl in run.artifacts:
        assert (name, kind, ttl.days) == ("model-fake01", "model", 7)
        assert set(state) == set(train_wandb.MODEL_STATE)  # weights, model config, tokenizer: no optimizer, no history
        source = {1: best, 3: last}.get(state["epoch"])  # the epochs whose weights are still on disk
        assert source is None or all(torch.equal(state["model"][k], source["model"][k]) for k in source["model"])


def test_end_uploads_one_version_when_the_last_epoch_is_the_best(assemble_trainer, tmp_path, monkeypatch):
    run = fit_with(assemble_trainer, tmp_path, "end", best_epochs={1, 3}, monkeypatch=monkeypatch)
    assert [(state["epoch"], aliases) for _, _, aliases, state, _ in run.artifacts] == [(3, ["best", "latest"])]


def test_the_old_switches_are_refused_with_what_replaces_them():
    with pytest.raises(train_wandb.ConfigError, match="--watch_gradients=True"):
        train_wandb.parse_args(["--log_model=True"])
    with pytest.raises(train_wandb.ConfigError, match=r"--log_checkpoints is gone: use --log_model=all"):
        train_wandb.parse_args(["--log_checkpoints=True"])
    with pytest.raises(train_wandb.ConfigError, match="model_ttl_days"):
        train_wandb.parse_args(["--model_ttl_days=-1"])
