"""requirements.txt states honest floors: the code uses no torch or wandb API newer than the minimum it names.

How it works:
- NEWER_APIS records every API the code uses that is newer than an old baseline (torch 2.0, wandb 0.19.0),
  with the first release known to have it and where that is written down. The version must not exceed the
  floor in requirements.txt, and each entry must still be used somewhere (a stale entry would keep the
  floor higher than the code needs: delete it and lower the floor).
- Every `torch.x.y` / `wandb.x` name in the project's .py files is found through the AST (import aliases
  resolved: `F.cross_entropy` is `torch.nn.functional.cross_entropy`). Each must be in NEWER_APIS or in the
  baseline lists OLD_TORCH / OLD_WANDB, so a new API fails this test until someone looks up when it appeared
  and records it here (with its source), raising the floor if need be.
- Uses the AST cannot see as names (a CLI command, a keyword value) are table entries with a regex.

Limits: methods called on objects (`tensor.foo()`, `run.foo()`) and new keyword arguments of old functions
are not scanned; record them by hand when you add one. Only torch and wandb are checked.

The other declarations agree with requirements.txt: pyproject.toml names the same dependencies (and
requirements-dev.txt's as its `dev` extra), and constraints.txt pins every one at a version inside its floor.
"""
import ast
import functools
import importlib.util
import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
NOT_PROJECT_CODE = {"venv", ".venv", "wandb", ".git", "out", ".cache", ".wheels"}  # top-level folders


@dataclass(frozen=True)
class Api:
    package: str
    version: str  # the first release known to have it (its first release, or one documented to have it)
    source: str
    pattern: str = ""  # regex for a use the AST cannot see as a dotted name; else the name itself is looked up


NEWER_APIS = {
    **{name: Api("torch", "2.4", "the device-type autocast state functions, torch.get_autocast_dtype('cuda') and its "
                 "kin, replace the per-device ones from 2.4 on (NVIDIA/TransformerEngine PR #1277)")
       for name in ("torch.get_autocast_dtype", "torch.is_autocast_enabled", "torch.set_autocast_dtype",
                    "torch.set_autocast_enabled")},
    "torch.nn.utils.clip_grads_with_norm_": Api(
        "torch", "2.6", "pytorch PR #139662 (Nov 2024) split clip_grad_norm_ into get_total_norm + "
        "clip_grads_with_norm_; they first shipped in 2.6.0 (allenai/OLMo-core issue #186)"),
    "torch.OutOfMemoryError": Api(
        "torch", "2.5", "device-agnostic OOM error since 2.5.0 (huggingface/accelerate PR #3475)"),
    "torch.utils.flop_counter.FlopCounterMode": Api(
        "torch", "2.4", "pytorch PR #95751 (Mar 2023, custom_mapping included); used on 2.4 in pytorch issue #134804"),
    "torch.utils.flop_counter.sdpa_flop_count": Api(
        "torch", "2.4", "pytorch PR #95854, (query, key, value) shapes since PR #96690 (Mar 2023); issue #134804"),
    "torch.utils.flop_counter.sdpa_backward_flop_count": Api(
        "torch", "2.4", "pytorch PR #96690 (Mar 2023) added the backward SDPA formulas; issue #134804"),
    "wandb leet": Api(
        "wandb", "0.28.0", "wandb PR #12028 (Jun 2026) moved LEET out of `wandb beta`; the `wandb leet` CLI "
        "reference is generated from v0.28.0", pattern=r'wandb leet\b|"wandb", "leet"'),
    "wandb leet inspect": Api(
        "wandb", "0.29.0", "wandb PR #12548 (Aug 2026); CLI reference generated from v0.29.0",
        pattern=r'"leet", "inspect"'),
    "wandb leet inspect --summary / --json": Api(
        "wandb", "0.31.0", "the v0.30.0 CLI reference prints records as text only; --summary and --json are in "
        "0.31.0's wandb/cli/leet.py", pattern=r'"inspect", "--(summary|json)"'),
    "wandb.sdk.lib.wbauth": Api(
        "wandb", "0.31.0", "wandb's own credential lookup (authenticate_session, AuthIdentityTokenFile, "
        "wbnetrc.read_netrc_auth_with_source), an internal module, checked in the installed 0.31.0 "
        "(wandb/sdk/lib/wbauth); its first release was not looked up, so the floor stays at the version tested",
        pattern=r"wbauth\."),
    "torch._dynamo.explain": Api(
        "torch", "2.1", "explain(fn)(*args) returning ExplainOutput (graph_break_count): PR #102869 (Jun 2023)"),
    "torch._dynamo.maybe_mark_dynamic": Api("torch", "2.1", "pytorch PR #105145 (Jul 2023)"),
    "torch._logging.set_logs": Api("torch", "2.1", "torch._logging and TORCH_LOGS are new in the 2.1 release"),
    "torch._logging.getArtifactLogger": Api("torch", "2.1", "torch._logging and TORCH_LOGS are new in the 2.1 release"),
    "torch.nn.attention.sdpa_kernel": Api(
        "torch", "2.3", "torch.nn.attention is new in 2.3; sdpa_kernel replaces torch.backends.cuda.sdp_kernel"),
    "torch.nn.attention.SDPBackend": Api("torch", "2.3", "torch.nn.attention is new in 2.3"),
    "torch.nn.attention.SDPBackend.CUDNN_ATTENTION": Api(
        "torch", "2.5", "PyTorch 2.5 release notes: 'a new CuDNN backend for SDPA'"),
    "torch.nn.attention.sdpa_kernel(set_priority=True)": Api(
        "torch", "2.6", "pytorch PR #140467 (Nov 2024) added set_priority; torch.compile honours the order since "
        "PR #147768 (Mar 2025, 2.7): on 2.6 a compiled model keeps PyTorch's own order", pattern=r"set_priority=True"),
    "torch.compiler.cudagraph_mark_step_begin": Api(
        "torch", "2.5", "listed in the 2.5 docs' torch.compiler API reference (torch.compiler_api.rst); its first "
        "release was not looked up further, the floor is above it"),
    "torch._fused_sdp_choice": Api(
        "torch", "2.6", "a private op (which SDPA kernel a call would get); seen in 2.11 and 2.14 where this ran, "
        "its first release not looked up, so the floor (2.6) is recorded"),
    "torch.utils.flop_counter.flop_registry": Api(
        "torch", "2.4", "the registry behind FlopCounterMode in flop_counter.py since pytorch PR #95751 (Mar 2023)"),
    'wandb.Settings(reinit="create_new")': Api(
        "wandb", "0.19.10", "wandb v0.19.10 release notes (wandb PR #9562)", pattern=r'reinit="create_new"'),
}

# in torch 2.0 or earlier (2.0 added torch.compile and scaled_dot_product_attention)
OLD_TORCH = set("""
    torch.bincount torch.cholesky_solve torch.float64 torch.linalg.cholesky torch.nn.AdaptiveAvgPool2d
    torch.nn.BatchNorm2d torch.nn.Flatten torch.nn.MaxPool2d torch.nn.ReLU torch.nn.functional.one_hot
    torch.nn.functional.binary_cross_entropy_with_logits torch.ones_like torch.optim.lr_scheduler.OneCycleLR
    torch.searchsorted torch.as_tensor torch.linalg.inv torch.linspace torch.quantile
    torch.cuda.get_rng_state_all torch.cuda.set_rng_state_all torch.maximum
    torch.Generator torch.Tensor torch.__version__ torch._foreach_norm torch.allclose torch.arange
    torch.autocast torch.bfloat16 torch.bool torch.cat torch.compile torch.device torch.empty torch.empty_like
    torch.equal torch.eye torch.float32 torch.from_numpy torch.full torch.get_num_threads torch.get_rng_state
    torch.isfinite torch.load torch.log_softmax torch.long torch.manual_seed torch.multinomial torch.no_grad
    torch.nonzero torch.ones torch.rand torch.randint torch.randn torch.randperm torch.save torch.set_num_threads
    torch.set_rng_state torch.sigmoid torch.stack torch.tensor torch.uint8 torch.unique torch.where torch.zeros
    torch.zeros_like torch.ops.aten
    torch.autograd.Function torch.autograd.grad torch.enable_grad torch.float16 torch.randn_like torch.cuda.Event
    torch.nn.functional.layer_norm torch.overrides.TorchFunctionMode torch.utils._pytree.tree_flatten
    torch.profiler.profile torch.profiler.ProfilerActivity.CUDA torch.testing.assert_close torch._dynamo.reset
    torch.linalg.inv torch.linspace torch.quantile
    torch.backends.cuda.matmul.allow_tf32 torch.backends.cudnn.allow_tf32 torch.backends.cudnn.benchmark
    torch.cuda.device_count torch.cuda.empty_cache torch.cuda.get_device_name torch.cuda.is_available
    torch.cuda.max_memory_allocated torch.cuda.mem_get_info torch.cuda.reset_peak_memory_stats
    torch.cuda.set_device torch.cuda.set_sync_debug_mode torch.cuda.synchronize
    torch.distributed.ReduceOp torch.distributed.all_gather torch.distributed.all_reduce torch.distributed.barrier
    torch.distributed.destroy_process_group torch.distributed.get_backend torch.distributed.get_rank
    torch.distributed.get_world_size torch.distributed.init_process_group torch.distributed.is_initialized
    torch.multiprocessing.start_processes
    torch.nn.Conv2d torch.nn.Dropout torch.nn.Embedding torch.nn.GELU torch.nn.LayerNorm torch.nn.Linear
    torch.nn.Module torch.nn.ModuleList torch.nn.Parameter torch.nn.Sequential
    torch.nn.functional.cross_entropy torch.nn.functional.mse_loss torch.nn.functional.normalize
    torch.nn.functional.scaled_dot_product_attention torch.nn.functional.softmax
    torch.nn.init.kaiming_normal_ torch.nn.init.normal_ torch.nn.init.zeros_
    torch.nn.parallel.DistributedDataParallel torch.nn.utils.clip_grad_norm_
    torch.optim.AdamW torch.optim.lr_scheduler.LambdaLR torch.optim.optimizer.register_optimizer_step_post_hook
    torch.utils._python_dispatch.TorchDispatchMode torch.utils.data.Dataset
    torch.exp torch.log10 torch.nn.functional.conv2d torch.nn.functional.pad torch.optim.SGD
""".split())

# in wandb 0.19.0 or earlier
OLD_WANDB = set("""
    wandb.AlertLevel wandb.Artifact wandb.Histogram wandb.Image wandb.Settings wandb.Table wandb.__version__
    wandb.init wandb.plot.line_series wandb.plot.scatter wandb.setup wandb.errors.AuthenticationError wandb.teardown
""".split())


def project_files():
    """The project's own .py files, this one excepted (its table would match its own patterns)."""
    return [p for p in sorted(REPO.rglob("*.py"))
            if p.relative_to(REPO).parts[0] not in NOT_PROJECT_CODE and p != Path(__file__).resolve()]


def floors():
    """{package: minimum Version} from requirements.txt's `name>=version` lines."""
    result = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", line)
        if m:
            result[m.group(1).lower()] = Version(m.group(2))
    return result


def dotted_names(tree):
    """Every torch/wandb name a module uses, as its full dotted path: aliases resolved, method calls cut off."""
    aliases = {}  # local name -> dotted path it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname] = a.name if a.asname else None
                aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    aliases.pop(None, None)

    def resolve(node):
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            return base and f"{base}.{node.attr}"
        return None

    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # part of a longer chain
    names = {resolve(n) for n in ast.walk(tree)
             if isinstance(n, (ast.Attribute, ast.Name)) and id(n) not in inner}
    names |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
              and n.level == 0 for a in n.names}
    return {n for n in names if n and n.split(".")[0] in ("torch", "wandb")}


def is_module(name):
    """`torch.nn.functional` is a namespace, not an API: importing it is no use of anything new."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def used_names():
    """Every torch/wandb API name in the project (deciding which names are modules imports torch and wandb)."""
    names = set()
    for path in project_files():
        names |= dotted_names(ast.parse(path.read_text(), filename=str(path)))
    return {n for n in names if not is_module(n)}


def code_text():
    return "\n".join(p.read_text() for p in project_files())


def known(name):
    """Listed itself, or an attribute of a listed API (torch.distributed.ReduceOp.MAX)."""
    parts = name.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return bool(prefixes & (OLD_TORCH | OLD_WANDB | set(NEWER_APIS)))


def test_no_recorded_api_is_newer_than_the_floor_in_requirements():
    minimum = floors()
    too_new = {name: f"{api.package} {api.version} ({api.source}) > floor {minimum[api.package]}"
               for name, api in NEWER_APIS.items() if Version(api.version) > minimum[api.package]}
    assert not too_new


def test_every_recorded_api_is_still_used():
    names, text = used_names(), code_text()
    stale = [name for name, api in NEWER_APIS.items()
             if not (re.search(api.pattern, text) if api.pattern else name in names)]
    assert not stale, f"no longer used: delete from NEWER_APIS (and lower the floor if it set it): {stale}"


def test_every_torch_and_wandb_name_in_the_code_is_recorded():
    unknown = sorted(n for n in used_names() if not known(n))
    assert not unknown, ("new torch/wandb APIs: find the first release that has each and add it to NEWER_APIS "
                         f"(or to OLD_TORCH / OLD_WANDB if it is in torch 2.0 / wandb 0.19.0): {unknown}")


def test_floors_are_the_highest_recorded_versions_and_installable():
    # the floor is exactly what the code needs (not more), and never above what this machine has
    minimum = floors()
    for package in ("torch", "wandb"):
        needed = max(Version(api.version) for api in NEWER_APIS.values() if api.package == package)
        assert minimum[package] == needed, package
        assert minimum[package] <= Version(installed_version(package)), package


def test_torchvision_floor_is_the_release_paired_with_the_torch_floor():
    # torchvision 0.(15 + k) is built against torch 2.k (0.21 <-> 2.6; installed here: 0.29 <-> 2.14)
    minimum = floors()
    assert minimum["torchvision"].minor == minimum["torch"].minor + 15
    assert Version(installed_version("torchvision")).minor == Version(installed_version("torch")).minor + 15


def requirement_lines(name):
    """The requirements a requirements or constraints file names, without comments and `-r` includes."""
    return [line.strip() for line in (REPO / name).read_text().splitlines()
            if line.strip() and not line.strip().startswith(("#", "-r"))]


def test_pyproject_declares_what_the_requirements_files_install():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == requirement_lines("requirements.txt")
    assert project["optional-dependencies"]["dev"] == requirement_lines("requirements-dev.txt")
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    runtime = {canonicalize_name(Requirement(line).name) for line in requirement_lines("requirements.txt")}
    assert not runtime & {"pytest", "ruff", "gputil"}  # test tools are dev-only; GPUtil is optional (the gpu extra)


def test_constraints_pin_every_requirement_at_a_version_inside_its_floor():
    pins = {canonicalize_name(name): Version(version)
            for name, version in (line.split("==") for line in requirement_lines("constraints.txt"))}
    for line in requirement_lines("requirements.txt") + requirement_lines("requirements-dev.txt"):
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None and requirement.specifier.contains(pinned), line
