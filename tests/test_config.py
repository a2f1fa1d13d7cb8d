"""Configuration: `--field=value` parsing, presets, WANDB_* environment variables, validation, CLI errors."""
import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import train_wandb
from health import HealthConfig
from logger import resolve_wandb_mode
from tokenizer import CaptionTokenizer
from train_wandb import (
    PRESETS,
    Config,
    ConfigError,
    WandBConfig,
    build_schedule,
    config_fields,
    main,
    parse_args,
    parse_value,
    validate,
    warmup_steps,
)

REPO_DIR = Path(train_wandb.__file__).resolve().parent


def field(cfgs, name):
    cfg, wcfg, _ = cfgs
    return getattr(cfg, name) if hasattr(cfg, name) else getattr(wcfg, name)


# -- config_fields -----------------------------------------------------------------

def test_config_fields_lists_every_field_of_every_class_once():
    fields = config_fields()
    config_names = {f.name for f in dataclasses.fields(Config)}
    wandb_names = {f.name for f in dataclasses.fields(WandBConfig)}
    health_names = {f.name for f in dataclasses.fields(HealthConfig)}
    assert not config_names & wandb_names, "a name in two classes would be silently shadowed"
    assert not (config_names | wandb_names) & health_names, "a name in two classes would be silently shadowed"
    assert set(fields) == config_names | wandb_names | health_names
    assert all(fields[n][0] is Config for n in config_names)
    assert all(fields[n][0] is WandBConfig for n in wandb_names)
    assert all(fields[n][0] is HealthConfig for n in health_names)


def test_config_fields_report_resolved_types():
    fields = config_fields()
    assert fields["batch_size"][1] is int
    assert fields["learning_rate"][1] is float
    assert fields["compile"][1] == bool | None
    assert fields["track_gradients"][1] is bool
    assert fields["data_dir"][1] is str
    assert fields["entity"][1] == str | None
    assert fields["run_name"][1] == str | None


# -- parse_value / parse_args: one override per field type --------------------------

def test_no_arguments_give_the_defaults():
    assert parse_args([]) == (Config(), WandBConfig(), HealthConfig())


@pytest.mark.parametrize("arg, name, expected", [
    ("--batch_size=32", "batch_size", 32),
    ("--max_steps=0", "max_steps", 0),
    ("--log_frequency=5", "log_frequency", 5),  # an int field of WandBConfig
    ("--learning_rate=5e-4", "learning_rate", 5e-4),
    ("--learning_rate=1e-3", "learning_rate", 1e-3),
    ("--learning_rate=1", "learning_rate", 1.0),  # an int literal is accepted for a float field
    ("--val_fraction=0.25", "val_fraction", 0.25),
    ("--compile=True", "compile", True),
    ("--compile=true", "compile", True),
    ("--compile=1", "compile", True),
    ("--compile=False", "compile", False),
    ("--compile=None", "compile", None),  # the default: compiled on CUDA, eager on a CPU
    ("--compile_mode=reduce-overhead", "compile_mode", "reduce-overhead"),
    ("--resume=False", "resume", False),
    ("--resume=0", "resume", False),
    ("--track_gradients=False", "track_gradients", False),  # a bool field of WandBConfig
    ("--watch_gradients=1", "watch_gradients", True),
    ("--log_model=best", "log_model", "best"),
    ("--finish_timeout=60", "finish_timeout", 60.0),
    ("--out_dir=runs/a b", "out_dir", "runs/a b"),
    ("--device=cuda:1", "device", "cuda:1"),
    ("--project=my-project", "project", "my-project"),  # a str field of WandBConfig
    ("--entity=my-team", "entity", "my-team"),
    ("--entity=None", "entity", None),
    ("--run_name=first try", "run_name", "first try"),
    ("--run_name=", "run_name", None),
])
def test_override_is_parsed_to_the_field_type(arg, name, expected):
    value = field(parse_args([arg]), name)
    assert value == expected
    assert type(value) is type(expected)  # 1.0 for a float field, not the int 1; True, not 1


def test_overrides_of_both_classes_combine_and_leave_other_fields_at_default():
    cfg, wcfg, _ = parse_args(["--batch_size=8", "--mode=offline", "--learning_rate=2e-4"])
    assert (cfg.batch_size, cfg.learning_rate, wcfg.mode) == (8, 2e-4, "offline")
    assert cfg.num_epochs == Config().num_epochs
    assert wcfg.project == WandBConfig().project


def test_last_override_of_a_field_wins():
    cfg, _, _ = parse_args(["--batch_size=8", "--batch_size=24"])
    assert cfg.batch_size == 24


def test_parse_value_int_literal_becomes_float_for_float_field():
    value = parse_value("learning_rate", "2", float)
    assert value == 2.0 and isinstance(value, float)


def test_parse_value_optional_str_none_spellings():
    assert parse_value("entity", "None", str | None) is None
    assert parse_value("entity", "none", str | None) is None
    assert parse_value("entity", "team", str | None) == "team"


@pytest.mark.parametrize("raw", ["yes", "on", "TRUE", "1"])
def test_parse_value_bool_true_spellings(raw):
    assert parse_value("compile", raw, bool) is True


@pytest.mark.parametrize("raw", ["no", "off", "FALSE", "0"])
def test_parse_value_bool_false_spellings(raw):
    assert parse_value("compile", raw, bool) is False


# -- type errors --------------------------------------------------------------------

@pytest.mark.parametrize("arg, name", [
    ("--batch_size=abc", "batch_size"),
    ("--batch_size=1.5", "batch_size"),
    ("--batch_size=True", "batch_size"),  # a bool is not an int here
    ("--batch_size='8'", "batch_size"),
    ("--batch_size=", "batch_size"),
    ("--num_epochs=1e2", "num_epochs"),
    ("--learning_rate=fast", "learning_rate"),
    ("--learning_rate=True", "learning_rate"),
    ("--log_frequency=ten", "log_frequency"),
    ("--compile=maybe", "compile"),
    ("--compile=2", "compile"),
    ("--track_hardware=", "track_hardware"),
])
def test_wrong_type_raises_config_error_naming_the_field(arg, name):
    with pytest.raises(ConfigError) as err:
        parse_args([arg])
    assert str(err.value).startswith(f"--{name}=")


def test_bad_bool_message_says_what_is_expected():
    with pytest.raises(ConfigError, match=r"--compile=maybe: expected True or False"):
        parse_args(["--compile=maybe"])


def test_compilation_is_the_default_on_cuda_only_and_false_turns_it_off():
    from train_wandb import compiles
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert Config().compile is None
    assert compiles(Config(), cuda) and not compiles(Config(), cpu)
    assert not compiles(Config(compile=False), cuda) and compiles(Config(compile=True), cpu)


def test_an_unknown_compile_mode_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--compile_mode=fast: choose from default, reduce-overhead"):
        parse_args(["--compile_mode=fast"])


def test_float_for_int_field_message_names_both_types():
    with pytest.raises(ConfigError, match=r"--batch_size=1\.5: expected int, got float"):
        parse_args(["--batch_size=1.5"])


# -- unknown fields and malformed arguments -----------------------------------------------

def test_unknown_field_suggests_the_close_match():
    with pytest.raises(ConfigError) as err:
        parse_args(["--batch_sise=8"])
    message = str(err.value)
    assert "--batch_sise" in message
    assert "did you mean" in message and "--batch_size" in message


def test_unknown_field_without_close_match_points_to_help():
    with pytest.raises(ConfigError) as err:
        parse_args(["--qqqqzzzz=1"])
    assert "--qqqqzzzz" in str(err.value)
    assert "--help" in str(err.value) and "did you mean" not in str(err.value)


@pytest.mark.parametrize("arg", ["batch_size=8", "--batch_size", "-batch_size=8", "--batch-size=8", "--=8", "8"])
def test_malformed_argument_raises_config_error_quoting_it(arg):
    with pytest.raises(ConfigError) as err:
        parse_args([arg])
    assert repr(arg) in str(err.value)
    assert "--field=value" in str(err.value)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError) as err:
        parse_args(["--preset=huge"])
    assert "--preset=huge" in str(err.value)
    assert "quick" in str(err.value)


# -- validate: every range rule ---------------------------------------------------------

@pytest.mark.parametrize("args, name", [
    (["--batch_size=0"], "batch_size"),
    (["--num_epochs=0"], "num_epochs"),
    (["--image_size=0"], "image_size"),
    (["--latent_dim=0"], "latent_dim"),
    (["--image_encoder_depth=0"], "image_encoder_depth"),
    (["--caption_encoder_depth=0"], "caption_encoder_depth"),
    (["--num_heads=0"], "num_heads"),  # caught before width % num_heads could divide by zero
    (["--patch_size=0"], "patch_size"),  # caught before image_size % patch_size could divide by zero
    (["--max_caption_len=2"], "max_caption_len"),
    (["--max_items=-1"], "max_items"),
    (["--max_steps=-1"], "max_steps"),
    (["--latent_patch_dim=-1"], "latent_patch_dim"),
    (["--num_workers=-1"], "num_workers"),
    (["--weight_decay=-0.1"], "weight_decay"),
    (["--grad_clip=-1"], "grad_clip"),
    (["--caption_loss_weight=-1"], "caption_loss_weight"),
    (["--learning_rate=0"], "learning_rate"),
    (["--learning_rate=-1e-3"], "learning_rate"),
    (["--val_fraction=1.0"], "val_fraction"),
    (["--val_fraction=0"], "val_fraction"),
    (["--warmup_fraction=1.0"], "warmup_fraction"),
    (["--min_lr_fraction=1.5"], "min_lr_fraction"),
    (["--dropout=1.0"], "dropout"),
    (["--caption_lead_weight=0"], "caption_lead_weight"),
    (["--caption_lead_weight=inf"], "caption_lead_weight"),
    (["--image_size=100"], "image_size"),  # not a multiple of patch_size 8
    (["--patch_size=6"], "image_size"),  # 128 is not a multiple of 6: the message names image_size
    (["--conv_stem=true", "--image_size=96", "--patch_size=12"], "patch_size"),  # the stem halves it: a power of 2
    (["--width=100"], "width"),  # not a multiple of num_heads 12
    (["--mode=bogus"], "mode"),
    (["--device=tpu"], "device"),
    (["--device=cuda:"], "device"),
    (["--device=CPU"], "device"),
    (["--precision=fp8"], "precision"),
    (["--log_frequency=0"], "log_frequency"),
    (["--best_metric=accuracy"], "best_metric"),  # not a val loss or measure
    (["--best_metric=val/i2t_r1"], "best_metric"),  # the name, without the val/ prefix
    (["--data_dir=/nonexistent/engravings"], "data_dir"),
])
def test_out_of_range_value_raises_config_error_naming_the_field(args, name):
    with pytest.raises(ConfigError) as err:
        parse_args(args)
    assert str(err.value).startswith(f"--{name}=")


def test_the_conv_stem_takes_the_power_of_two_patch_sizes():
    for patch in (4, 8, 16):
        assert parse_args(["--conv_stem=true", f"--patch_size={patch}"])[0].conv_stem


def test_divisibility_errors_name_the_divisor():
    with pytest.raises(ConfigError, match=r"--image_size=100: must be a multiple of patch_size \(8\)"):
        parse_args(["--image_size=100"])
    with pytest.raises(ConfigError, match=r"--width=100: must be a multiple of num_heads \(12\)"):
        parse_args(["--width=100"])


def test_data_dir_that_is_a_file_is_rejected(tmp_path):
    path = tmp_path / "metadata.jsonl"
    path.write_text("{}\n")
    with pytest.raises(ConfigError, match=r"^--data_dir=.*is not a folder"):
        parse_args([f"--data_dir={path}"])


def test_existing_data_dir_is_accepted(tmp_path):
    cfg, _, _ = parse_args([f"--data_dir={tmp_path}"])
    assert cfg.data_dir == str(tmp_path)


def test_default_bundled_data_dir_is_not_checked_before_generation():
    cfg, _, _ = parse_args([])  # data/bundled may not exist yet: it is generated on first use
    assert cfg.data_dir == train_wandb.BUNDLED_DATA_DIR


@pytest.mark.parametrize("args", [
    ["--device=cpu"], ["--device=cuda"], ["--device=cuda:3"], ["--precision=bf16"], ["--precision=fp32"],
    ["--mode=online"], ["--mode=offline"], ["--mode=disabled"], ["--max_caption_len=3"],
    ["--warmup_fraction=0"], ["--min_lr_fraction=0"], ["--min_lr_fraction=1"], ["--grad_clip=0"],
    ["--val_fraction=0.999"], ["--image_size=96", "--patch_size=16"], ["--width=96", "--num_heads=8"],
])
def test_boundary_values_are_accepted_as_given(args):
    cfg, wcfg, _ = parse_args(args)  # no ConfigError: validate does not check whether the device exists
    for arg in args:
        name, value = arg.removeprefix("--").split("=")
        got = getattr(cfg, name) if hasattr(cfg, name) else getattr(wcfg, name)
        assert got == type(got)(value), arg


def test_validate_direct_call_on_dataclasses():
    assert validate(Config(), WandBConfig()) is None
    with pytest.raises(ConfigError, match=r"^--log_frequency=0:"):
        validate(Config(), WandBConfig(log_frequency=0))
    with pytest.raises(ConfigError, match=r"^--batch_size=-2:"):
        validate(Config(batch_size=-2), WandBConfig())


# -- presets ----------------------------------------------------------------------------

def test_quick_preset_sets_every_value_it_names_and_keeps_the_other_defaults():
    cfg, wcfg, _ = parse_args(["--preset=quick"])
    for name, value in PRESETS["quick"].items():
        assert getattr(cfg, name) == value, name
    assert cfg.max_caption_len == Config().max_caption_len
    assert cfg.seed == Config().seed
    assert wcfg == WandBConfig()


def test_the_seed_preset_replays_cuda_graphs_where_it_is_compiled_and_runs_eagerly_on_a_cpu():
    cfg, _, _ = parse_args(["--preset=seed"])
    assert cfg.batch_size == 16 and cfg.compile_mode in train_wandb.CUDAGRAPH_MODES
    assert not train_wandb.compiles(cfg, torch.device("cpu")) and train_wandb.compiles(cfg, torch.device("cuda"))


@pytest.mark.parametrize("argv", [
    ["--preset=quick", "--batch_size=8"],
    ["--batch_size=8", "--preset=quick"],  # the field still wins although it comes first
])
def test_explicit_field_beats_the_preset_in_either_order(argv):
    cfg, _, _ = parse_args(argv)
    assert cfg.batch_size == 8
    assert cfg.image_size == PRESETS["quick"]["image_size"]


def test_field_override_keeps_the_rest_of_the_preset():
    cfg, _, _ = parse_args(["--preset=quick", "--width=256"])
    assert cfg.width == 256
    assert cfg.num_heads == PRESETS["quick"]["num_heads"]
    assert cfg.latent_dim == PRESETS["quick"]["latent_dim"]


def test_parsing_does_not_modify_the_preset():
    before = dict(PRESETS["quick"])
    parse_args(["--preset=quick", "--batch_size=8", "--out_dir=elsewhere"])
    assert PRESETS["quick"] == before


def test_of_two_presets_the_later_one_wins_but_fields_beat_both(monkeypatch):
    monkeypatch.setitem(PRESETS, "small", dict(batch_size=2, num_epochs=3))
    monkeypatch.setitem(PRESETS, "smaller", dict(batch_size=4))
    cfg, _, _ = parse_args(["--preset=small", "--preset=smaller"])
    assert (cfg.batch_size, cfg.num_epochs) == (4, 3)
    cfg, _, _ = parse_args(["--seed=1", "--preset=small", "--preset=smaller", "--num_epochs=9"])
    assert (cfg.batch_size, cfg.num_epochs, cfg.seed) == (4, 9, 1)


def test_preset_result_is_validated(monkeypatch):
    monkeypatch.setitem(PRESETS, "broken", dict(width=100))
    with pytest.raises(ConfigError, match=r"^--width=100"):
        parse_args(["--preset=broken"])


# -- WANDB_* environment variables (each test starts without them: conftest.py) -----------------

def test_env_vars_replace_the_defaults(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_MODE", "offline")
    _, wcfg, _ = parse_args([])
    assert (wcfg.project, wcfg.entity, wcfg.mode) == ("env-project", "env-team", "offline")


def test_command_line_beats_env_vars(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_MODE", "offline")
    _, wcfg, _ = parse_args(["--project=cli-project", "--entity=None", "--mode=disabled"])
    assert (wcfg.project, wcfg.entity, wcfg.mode) == ("cli-project", None, "disabled")


def test_command_line_beats_env_var_even_with_a_preset(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    _, wcfg, _ = parse_args(["--project=cli-project", "--preset=quick"])
    assert wcfg.project == "cli-project"


def test_empty_env_var_is_ignored(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "")
    monkeypatch.setenv("WANDB_MODE", "")
    _, wcfg, _ = parse_args([])
    assert wcfg.project == WandBConfig().project
    assert wcfg.mode == "auto"


def test_env_vars_are_read_at_parse_time(monkeypatch):
    _, before, _ = parse_args([])
    monkeypatch.setenv("WANDB_ENTITY", "late-team")
    _, after, _ = parse_args([])
    assert before.entity is None and after.entity == "late-team"


def test_invalid_env_mode_is_rejected_naming_the_variable(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(ConfigError, match=r"^WANDB_MODE=bogus"):
        parse_args([])
    _, wcfg, _ = parse_args(["--mode=offline"])  # ... unless the command line replaces it
    assert wcfg.mode == "offline"


def test_env_mode_dryrun_is_accepted_as_offline(monkeypatch):
    # resolve_wandb_mode maps W&B's legacy WANDB_MODE=dryrun to offline, so parse_args should let it through.
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    _, wcfg, _ = parse_args([])
    assert resolve_wandb_mode(wcfg.mode)[0] == "offline"


# -- main() in-process ---------------------------------------------------------------------

@pytest.fixture
def keep_formatwarning(monkeypatch):
    """main() replaces warnings.formatwarning; put it back after the test."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)


def test_main_raises_config_error_for_unknown_field(keep_formatwarning):
    with pytest.raises(ConfigError, match="--batch_size"):
        main(["--batch_sise=8"])


def test_main_help_returns_zero_and_lists_fields(capsys):
    assert main(["--batch_size=8", "-h"]) == 0  # help wins over everything else, nothing is validated
    out = capsys.readouterr().out
    for name in config_fields():
        assert f"--{name}=" in out
    assert "quick" in out


def test_main_rejects_a_cuda_device_that_is_not_there(keep_formatwarning):
    if torch.cuda.is_available():  # one past the last device
        with pytest.raises(ConfigError, match=rf"^--device=cuda:{torch.cuda.device_count()}: only "):
            main([f"--device=cuda:{torch.cuda.device_count()}"])
    else:
        with pytest.raises(ConfigError, match=r"^--device=cuda: CUDA is not available"):
            main(["--device=cuda"])


# -- the command line (subprocesses, run side by side) ----------------------------------------

CLI_ERROR_CASES = {
    "unknown_field": (["--batch_sise=8"], "--batch_size"),
    "missing_data_dir": (["--data_dir=/nonexistent"], "--data_dir=/nonexistent"),
}
if not torch.cuda.is_available():
    CLI_ERROR_CASES["cuda_absent"] = (["--device=cuda"], "--device=cuda")
else:  # with CUDA present, an index past the last device is the equivalent error
    CLI_ERROR_CASES["cuda_absent"] = ([f"--device=cuda:{torch.cuda.device_count()}"], "--device=cuda:")


@pytest.fixture(scope="module")
def cli_runs():
    """Start every CLI case at once (each pays the torch import), then collect them."""
    env = {**os.environ, "WANDB_MODE": "disabled"}  # should any case get past validation, never reach the network
    cases = {key: argv for key, (argv, _) in CLI_ERROR_CASES.items()}
    cases["help"] = ["--help"]
    procs = {key: subprocess.Popen([sys.executable, "train_wandb.py", *argv], cwd=REPO_DIR, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for key, argv in cases.items()}
    results = {}
    for key, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[key] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("case", sorted(CLI_ERROR_CASES))
def test_cli_error_exits_2_with_one_error_line_and_no_traceback(cli_runs, case):
    returncode, out, err = cli_runs[case]
    expected = CLI_ERROR_CASES[case][1]
    assert returncode == 2, err
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


def test_cli_help_exits_0_and_lists_every_field(cli_runs):
    returncode, out, err = cli_runs["help"]
    assert returncode == 0, err
    for name in config_fields():
        assert f"--{name}=" in out, name
    fields = [line for line in out.splitlines() if line.startswith("  --")]
    assert len(fields) == len(config_fields())
    assert all("  # " in line for line in fields), [line for line in fields if "  # " not in line]  # its meaning
    assert "--preset=NAME" in out and "quick" in out


def test_a_missing_measure_library_is_a_one_line_error_before_any_training(monkeypatch):
    import importlib.util
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "sacrebleu" else real_find_spec(name, *args))
    with pytest.raises(ConfigError, match=r"^sacrebleu not installed .*pip install -r requirements.txt$"):
        parse_args(["--preset=quick"])


def test_only_a_lead_weight_gives_the_model_a_lead_end():
    tokenizer, _ = CaptionTokenizer.build(["Windmill. A windmill on the left."])
    plain = train_wandb.model_config(parse_args([])[0], tokenizer)
    assert plain.lead_end_id == -1  # as in every checkpoint from before the field: those resume unchanged
    weighted = train_wandb.model_config(parse_args(["--caption_lead_weight=20"])[0], tokenizer)
    assert (weighted.caption_lead_weight, weighted.lead_end_id) == (20.0, tokenizer.stoi["."])


# -- the learning-rate schedule ---------------------------------------------------

@pytest.mark.parametrize("fraction, min_steps, total, expected", [
    (0.1, 50, 1584, 158),  # a long run: the fraction decides
    (0.1, 50, 56, 14),  # a short run: the floor, capped at a quarter of the run
    (0.1, 50, 400, 50),  # the floor itself
    (0.0, 50, 56, 0),  # warmup_fraction 0 means no warm-up, whatever the floor
    (0.1, 0, 56, 5),  # no floor: the fraction alone
])
def test_the_warm_up_is_the_fraction_with_a_floor_for_short_runs(fraction, min_steps, total, expected):
    cfg = Config(warmup_fraction=fraction, warmup_min_steps=min_steps)
    assert warmup_steps(cfg, total) == expected


def test_the_schedule_rises_linearly_to_the_peak_then_decays_to_the_floor():
    cfg = Config(learning_rate=1.0, warmup_fraction=0.1, warmup_min_steps=0, min_lr_fraction=0.1)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.learning_rate)
    scheduler = build_schedule(optimizer, cfg, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert rates[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1)
