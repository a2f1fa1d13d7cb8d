"""Health checks while training: five analyses, one module each, fed by one HealthMonitor.

    monitor = HealthMonitor(HealthConfig(), run_config)   # run_config: the run's Config + WandBConfig as a dict
    for finding in monitor.observe(row): print(finding)    # each logged row: {"global_step": 80, "train/...": ...}
    monitor.verdicts()                                     # {analysis: Verdict}

training.py (loss and gradient behaviour, GPU memory), dominance.py (each weighted loss component against
its own reference and floor), latent.py (what z knows, from the linear probes; its spread between images),
overfitting.py (validation vs training loss per epoch), hardware.py (input wait, CPU, GPU memory, throughput);
core.py holds what they share (HealthConfig, Finding, Verdict, History). Optional run_config keys the checks
use when present: reference_levels {loss_image, loss_caption, loss_alignment}, alignment_floor, total_steps.
"""

from .core import ANALYSES, COMPONENTS, Finding, HealthConfig, Verdict
from .monitor import HealthMonitor, replay

__all__ = ["ANALYSES", "COMPONENTS", "Finding", "HealthConfig", "HealthMonitor", "Verdict", "replay"]
