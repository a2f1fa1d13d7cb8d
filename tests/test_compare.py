"""compare.py compare: the table of what differs between finished runs, their measures and baselines, the plots."""
import subprocess
import sys
from pathlib import Path

from compare import compare_runs, main
from health_rows import EPOCHS, INFO, RUN_CONFIG, rows_with_baseline, rows_with_measures
from report import write_report

REPO_DIR = Path(__file__).resolve().parents[1]


def test_compare_lists_only_the_differing_config_fields_both_runs_and_the_best(reported, tmp_path, capsys):
    run_a, run_b = reported / "run_a", reported / "run_b"
    dest = tmp_path / "cmp"
    assert main(["compare", str(run_a), str(run_b), "--out", str(dest)]) == 0
    printed = capsys.readouterr().out
    text = (dest / "comparison.md").read_text()
    assert printed == text
    header = text.splitlines()[2]
    assert "learning_rate" in header and "batch_size" not in header and "out_dir" not in header
    assert "| run_a | 0.001 |" in text and "| run_b | 0.0005 |" in text
    assert "Best: **run_b**" in text and "learning_rate=0.0005" in text
    assert (dest / "compare_loss.png").stat().st_size > 0 and (dest / "compare_caption_accuracy.png").is_file()
    assert compare_runs([run_a, run_b], dest) == dest / "comparison.md"


def test_compare_of_a_folder_without_summary_json_exits_2_with_one_error_line(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    result = subprocess.run([sys.executable, str(REPO_DIR / "compare.py"), "compare", str(tmp_path / "not_a_run"),
                             "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and "summary.json" in line


def test_compare_tables_the_last_epochs_measures_and_marks_a_run_without_them(tmp_path, reported):
    write_report(tmp_path / "m", rows_with_measures(), None, {**INFO, "config": RUN_CONFIG})
    dest = tmp_path / "cmp"
    compare_runs([tmp_path / "m", reported / "run_a"], dest)
    text = (dest / "comparison.md").read_text()
    assert "| run | i2t_r1 | grounded_technique |" in text
    assert f"| m | {EPOCHS / 100:g} | {EPOCHS / 10:g} |" in text and "| run_a | — | — |" in text
    assert "Validation measures (last epoch)" in (dest / "comparison.html").read_text()


def test_compare_shows_one_baseline_row_when_the_runs_share_it_and_one_per_run_otherwise(tmp_path):
    for name, technique in (("x", 0.1), ("y", 0.1), ("z", 0.2)):
        write_report(tmp_path / name, rows_with_baseline(technique), None, {**INFO, "config": RUN_CONFIG})
    compare_runs([tmp_path / "x", tmp_path / "y"], tmp_path / "same")
    same = (tmp_path / "same" / "comparison.md").read_text()
    assert "| baseline | 0.002 | 0.1 |" in same
    compare_runs([tmp_path / "x", tmp_path / "z"], tmp_path / "other")
    other = (tmp_path / "other" / "comparison.md").read_text()
    assert "| baseline of x | 0.002 | 0.1 |" in other and "| baseline of z | 0.002 | 0.2 |" in other
