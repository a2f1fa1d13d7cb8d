"""The table tools/gpu_check.sh ends with: each benchmark.py row beside the roofline's prediction for its config.

    python tools/gpu_summary.py --add LABEL BENCH_OUTPUT ROOFLINE_OUTPUT >> FOLDER/results.jsonl   # after a row
    python tools/gpu_summary.py FOLDER      # the table from FOLDER/results.jsonl and FOLDER/sdpa.json

Measured: samples/s of the bare loop (a) and of the Trainer with W&B disabled (b), medians, MFU of the bare loop,
and the time from process start to the first optimizer step (the compilation included). Predicted: the roofline's
samples/s on this GPU (roofline.py: a bound no eager kernel sequence beats; a compiled step can, by fusing ops).
Writes FOLDER/summary.md and prints it.
"""

import json
import sys
from pathlib import Path


def last_json(path, key):
    """The last line of a file that parses as a JSON object holding `key`, or None (max-autotune, for one, prints
    JSON lines of its own)."""
    try:
        lines = Path(path).read_text().strip().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and key in value:
            return value
    return None


def gpu_key(device, gpus):
    """The roofline's GPU name for a device name ('NVIDIA H200' -> 'H200'), or None."""
    return next((g for g in gpus if g.split()[0] in (device or "")), None)


def result_line(label, bench_output, roofline_output):
    """One row's JSON line: the last JSON objects of benchmark.py's and the roofline's output (None where the run
    failed), the benchmark's per-window and per-round lists left out."""
    bench = last_json(bench_output, "samples_per_s")
    if bench:
        bench = {k: v for k, v in bench.items() if k not in ("windows", "rounds")}
    return json.dumps({"label": label, "bench": bench, "roofline": last_json(roofline_output, "roofline")})


def rows(folder):
    lines = ["| row | bare samples/s | Trainer samples/s | bare MFU | first step after start (s) | "
             "roofline samples/s | bare / roofline |", "|---|---|---|---|---|---|---|"]
    results = Path(folder) / "results.jsonl"
    for line in results.read_text().splitlines() if results.exists() else []:
        result = json.loads(line)
        label, bench, roof = result["label"], result["bench"], result["roofline"]
        if bench is None:
            lines.append(f"| {label} | failed, timed out or skipped (gpu_check.log) | | | | | |")
            continue
        sps = bench.get("samples_per_s", {})
        bare, trainer = (sps.get(v, {}).get("median") for v in ("bare", "disabled"))
        mfu = bench.get("mfu", {}).get("bare", {}).get("mfu")
        first = bench.get("startup", {}).get("process_start_to_first_optimizer_step_s")
        key = gpu_key(bench.get("device"), (roof or {}).get("roofline", {}))
        predicted = roof["roofline"][key]["samples_per_s"] if key else None

        def fmt(x, spec):
            return format(x, spec) if isinstance(x, (int, float)) else "n/a"
        ratio = bare / predicted if bare and predicted else None
        lines.append(f"| {label} | {fmt(bare, ',.0f')} | {fmt(trainer, ',.0f')} | {fmt(mfu, '.1%')} | "
                     f"{fmt(first, '.0f')} | {fmt(predicted, ',.0f')} ({key or 'no prediction'}) | "
                     f"{fmt(ratio, '.2f')} |")
    sdpa = last_json(Path(folder) / "sdpa.json", "shapes")
    if sdpa:
        lines.append("")
        lines.append(f"SDPA forward + backward, batch {sdpa['batch']} (ms; fastest marked):")
        for name, r in sdpa["shapes"].items():
            cells = ", ".join(f"{k} {v:.3f}" + (" *" if k == r["fastest"] else "") if v is not None else f"{k} refused"
                              for k, v in r["ms"].items())
            lines.append(f"- {name} (T={r['T']}, {r['calls_per_step']} a step): {cells}")
        lines.append(f"- PyTorch's own choice: {', '.join(sdpa['default_kernels']) or 'unknown'}")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "--add":
        print(result_line(*argv[1:]))
        return 0
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python tools/gpu_summary.py FOLDER (the folder tools/gpu_check.sh wrote), or "
              "--add LABEL BENCH_OUTPUT ROOFLINE_OUTPUT")
        return 2
    text = "\n".join(rows(argv[0])) + "\n"
    (Path(argv[0]) / "summary.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
