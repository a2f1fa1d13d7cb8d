"""tools/gpu_summary.py, the table tools/gpu_check.sh ends with, on outputs shaped like benchmark.py's (no GPU)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import gpu_summary  # noqa: E402


def test_a_measured_row_stands_beside_its_roofline_prediction_and_a_failed_one_says_so(tmp_path):
    bench = {"device": "NVIDIA H200", "samples_per_s": {"bare": {"median": 3000.0}, "disabled": {"median": 2900.0}},
             "mfu": {"bare": {"mfu": 0.3}}, "startup": {"process_start_to_first_optimizer_step_s": 75.0},
             "windows": [{"bare": {}}] * 50}
    roofline = {"roofline": {"H100 SXM": {"samples_per_s": 4000.0}, "H200": {"samples_per_s": 5000.0}}}
    (tmp_path / "bench.txt").write_text("Device: NVIDIA H200\n" + json.dumps(bench) + "\n")
    (tmp_path / "roof.txt").write_text("H200: predicted ...\n" + json.dumps(roofline) + "\n")
    lines = [gpu_summary.result_line("compiled-b128", tmp_path / "bench.txt", tmp_path / "roof.txt"),
             gpu_summary.result_line("seed-b16", tmp_path / "missing.txt", tmp_path / "roof.txt")]
    assert "windows" not in json.loads(lines[0])["bench"]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    assert gpu_summary.main([str(tmp_path)]) == 0
    table = (tmp_path / "summary.md").read_text().splitlines()
    assert table[2] == "| compiled-b128 | 3,000 | 2,900 | 30.0% | 75 | 5,000 (H200) | 0.60 |"
    assert table[3].startswith("| seed-b16 | failed")


def test_a_run_that_died_after_printing_other_json_counts_as_failed(tmp_path):
    # max-autotune prints JSON lines of its own; a row killed while autotuning has no benchmark result
    (tmp_path / "bench.txt").write_text(json.dumps({"num_choices": 22, "best_kernel": "triton_mm_1"}) + "\n")
    (tmp_path / "roof.txt").write_text(json.dumps({"roofline": {"H200": {"samples_per_s": 5000.0}}}) + "\n")
    line = json.loads(gpu_summary.result_line("autotune-b128", tmp_path / "bench.txt", tmp_path / "roof.txt"))
    assert line["bench"] is None
    assert line["roofline"]["roofline"]["H200"]["samples_per_s"] == 5000.0
