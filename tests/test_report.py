"""report.py: the local report of a run (metrics.csv, report.md, report.html, summary.json, the plots)."""
import csv
import json

import pytest
from PIL import Image

from health import ANALYSES
from health_rows import (
    EPOCHS,
    INFO,
    PLOT_FILES,
    RUN_CONFIG,
    WINDOWS,
    history,
    rows_with_baseline,
    rows_with_measures,
    train_rows,
    val_epochs,
    val_rows,
)
from report import write_report


def test_write_report_writes_every_file_a_full_csv_and_a_section_per_analysis(reported):
    out, rows = reported / "run_a", history()  # run_a is the unscaled history
    assert {p.name for p in out.iterdir()} == {"metrics.csv", "report.md", "report.html", "summary.json"} | PLOT_FILES
    assert all(p.stat().st_size > 0 for p in out.iterdir())
    with open(out / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        table = list(reader)
    expected = sorted({k for r in rows for k in r} - {"global_step"})
    assert reader.fieldnames == ["global_step"] + expected
    assert len(table) == len(rows)
    assert float(table[0]["train/loss_total"]) == pytest.approx(rows[0]["train/loss_total"])
    assert table[WINDOWS]["train/loss_total"] == "" and table[WINDOWS]["val/loss_total"] != ""  # the first val row
    report = (out / "report.md").read_text()
    for i, title in enumerate(ANALYSES.values(), 1):
        assert f"### {i}. {title}: healthy" in report
    assert report.count("*How it decides:*") == len(ANALYSES)
    assert "2 min 05 s" in report and "CPU" in report and "caption accuracy" in report
    assert all(f"]({name})" in report for name in PLOT_FILES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(min(r["val/loss_total"] for r in val_rows(rows)))
    assert summary["config"]["learning_rate"] == 0.001 and summary["status"] == "finished"
    assert summary["final_val"]["caption_accuracy"] > 0 and summary["verdicts"]["hardware"]["status"] == "healthy"


def test_write_report_survives_one_row_no_val_rows_nan_rows_and_no_rows(tmp_path):
    rows = history()
    nan_rows = history()
    for row in train_rows(nan_rows)[20:]:
        row["train/loss_total"] = float("nan")
        row["train/grad_norm"] = float("inf")
    sparse = [{"global_step": 10, "train/loss_total": 2.0}, {"global_step": 20, "train/lr": 0.001}]
    cases = {"one": rows[:1], "noval": train_rows(rows), "nan": nan_rows, "sparse": sparse, "empty": []}
    for name, case in cases.items():
        info = {"status": "interrupted", "best_val_loss": float("inf"), "best_epoch": 0, "config": RUN_CONFIG}
        paths = write_report(tmp_path / name, case, None, info)  # no monitor: the rows are replayed
        assert {"metrics", "report", "summary"} <= set(paths), name
        assert "interrupted" in (tmp_path / name / "report.md").read_text()
        summary = json.loads((tmp_path / name / "summary.json").read_text())  # strict JSON: inf became null
        assert summary["best_val_loss"] is None or name not in ("one", "noval", "sparse", "empty")
    nan_summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert nan_summary["final_train"]["loss_total"] is None
    assert "non_finite" in (tmp_path / "nan" / "report.md").read_text()


def test_report_md_tables_the_measures_of_every_epoch(tmp_path, reported):
    write_report(tmp_path / "m", rows_with_measures(), None, {**INFO, "config": RUN_CONFIG})
    report = (tmp_path / "m" / "report.md").read_text()
    assert "## What the model learned" in report
    lines = report.splitlines()
    header = lines.index("| epoch | i2t_r1 | grounded_technique |")
    assert lines[header + 2] == "| 1 | 0.01 | 0.1 |"
    assert lines[header + 1 + EPOCHS] == f"| {EPOCHS} | {EPOCHS / 100:g} | {EPOCHS / 10:g} |"
    assert "## What the model learned" not in (reported / "run_a" / "report.md").read_text()  # none logged


def test_report_md_puts_the_baseline_first_and_names_the_measures_not_above_it(tmp_path):
    last_technique = EPOCHS / 10
    write_report(tmp_path / "b", rows_with_baseline(last_technique), None, {**INFO, "config": RUN_CONFIG})
    lines = (tmp_path / "b" / "report.md").read_text().splitlines()
    header = lines.index("| epoch | i2t_r1 | grounded_technique |")
    assert lines[header + 2] == f"| baseline | 0.002 | {last_technique:g} |"
    assert lines[header + 3] == "| 1 | 0.01 | 0.1 |"
    # equal to its baseline is not better than it
    assert ("At the last epoch 1 of 2 measures are no better than their baseline, so the model has learned "
            "nothing they can see: grounded_technique.") in lines
    write_report(tmp_path / "c", rows_with_baseline(0.0), None, {**INFO, "config": RUN_CONFIG})
    assert "At the last epoch every measure is better than its baseline." in (tmp_path / "c" / "report.md").read_text()
    html = (tmp_path / "b" / "report.html").read_text()
    assert "<th>baseline</th>" in html and "no better than their baseline" in html


def test_report_md_tables_the_probes_by_epoch_apart_with_their_chance_first_and_the_words_z_knows(tmp_path):
    rows = rows_with_baseline(0.05)
    for row in val_rows(rows):
        row.update({"val/probe_word_auc": 0.5 + row["val/epoch"] / 100, "val/probe_kind": row["val/epoch"] / 20,
                    "val/probe_words_best": f"dusk {row['val/epoch']:g}", "val/probe_words_worst": "view 0.5",
                    "baseline/probe_word_auc": 0.5, "baseline/probe_kind": 0.06})
    write_report(tmp_path / "p", rows, None, {**INFO, "config": RUN_CONFIG})
    report = (tmp_path / "p" / "report.md").read_text()
    lines = report.splitlines()
    assert "| epoch | i2t_r1 | grounded_technique |" in lines  # the other measures' table leaves the probes out
    header = lines.index("| epoch | probe_word_auc | probe_kind |")
    assert lines[header - 2].startswith("A linear map (ridge regression) fit on the z")
    assert lines[header + 2:header + 4] == ["| chance | 0.5 | 0.06 |", "| 1 | 0.51 | 0.05 |"]
    assert lines[header + 2 + EPOCHS] == f"| {EPOCHS} | {0.5 + EPOCHS / 100:g} | {EPOCHS / 20:g} |"
    assert f"At the last epoch z predicts these words best: dusk {EPOCHS}; worst: view 0.5 (ROC AUC of each)." in lines
    with open(tmp_path / "p" / "metrics.csv", newline="") as f:
        assert list(csv.DictReader(f))[-1]["val/probe_words_best"] == f"dusk {EPOCHS}"
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["probe_words"] == {"best": f"dusk {EPOCHS}", "worst": "view 0.5"}


def test_the_measures_plot_draws_each_logged_measure_with_its_baseline_and_only_when_there_are_measures(
        tmp_path, monkeypatch):
    import matplotlib.axes

    from report import plot_measures
    drawn = []  # the label of every line and the y of every dashed baseline, in drawing order
    real_plot, real_axhline = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda ax, *a, **k: (drawn.append(("line", k.get("label"))), real_plot(ax, *a, **k))[1])
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline",
                        lambda ax, y=0, **k: (drawn.append(("baseline", y)), real_axhline(ax, y, **k))[1])
    assert plot_measures(rows_with_baseline(0.05), tmp_path / "measures.png")
    assert not plot_measures(history(), tmp_path / "none.png")  # no validation measures: no plot
    assert drawn == [("line", "i2t_r1"), ("baseline", 0.002), ("line", "grounded_technique"), ("baseline", 0.05)]
    with Image.open(tmp_path / "measures.png") as image:
        assert image.format == "PNG" and image.size == (720, 380)  # two panels of 3.6 x 3.8 inches at 100 dpi
    assert not (tmp_path / "none.png").exists()
    monkeypatch.undo()
    write_report(tmp_path / "run", rows_with_baseline(0.05), None, {**INFO, "config": RUN_CONFIG})
    assert "![Validation measures by epoch (dashed: each one's baseline)](measures.png)" in (
        tmp_path / "run" / "report.md").read_text()


def test_a_lower_median_rank_is_what_beats_its_baseline():
    from report import not_above_baseline
    baseline = {"i2t_median_rank": 250.0, "i2t_r1": 0.002}
    assert not_above_baseline({"i2t_median_rank": 20.0, "i2t_r1": 0.05}, baseline) == []
    assert not_above_baseline({"i2t_median_rank": 260.0, "i2t_r1": 0.001}, baseline) == ["i2t_r1", "i2t_median_rank"]
    assert not_above_baseline({"i2t_r1": 0.05}, {}) == []  # nothing to compare with


def test_the_report_names_the_measures_the_last_epoch_does_better_than_best_pt():
    from report import best_checkpoint_sentence, run_facts
    rows = val_epochs((2.0, 0.30, 4.0, 14.0), (1.5, 0.40, 3.0, 15.0), (1.8, 0.50, 2.0, 14.5))  # best loss: epoch 2
    sentence = best_checkpoint_sentence(run_facts("out/x", rows, {}))
    assert sentence == ("best.pt holds epoch 2, the lowest val loss_total, but at the last epoch 2 of 3 measures are "
                        "better than there (i2t_r1 0.4 → 0.5, i2t_median_rank 3 → 2): for them, last.pt is the "
                        "better model.")  # psnr fell from 15 to 14.5: not named
    assert best_checkpoint_sentence(run_facts("out/x", rows[:2], {})) is None  # best.pt is the last epoch
    worse = val_epochs((2.0, 0.3, 4.0, 14.0), (1.5, 0.4, 3.0, 15.0), (1.8, 0.4, 3.0, 14.0))
    assert best_checkpoint_sentence(run_facts("out/x", worse, {})) is None  # nothing better since


def test_a_report_of_a_run_whose_best_pt_follows_a_measure_names_both_epochs(tmp_path):
    """--best_metric=i2t_r1: best.pt is the epoch of the highest i2t_r1 (3), the lowest val loss is epoch 2's."""
    from report import best_checkpoint_sentence, run_facts, summary_paragraph
    rows = val_epochs((2.0, 0.30, 4.0, 14.0), (1.5, 0.40, 3.0, 15.0), (1.8, 0.50, 2.0, 14.5), (1.9, 0.45, 2.0, 16.0))
    info = {**INFO, "best_val_loss": 1.5, "best_epoch": 3, "config": {**RUN_CONFIG, "best_metric": "i2t_r1"}}
    facts = run_facts("out/x", rows, info)
    assert (facts["best_epoch"], facts["best_loss_epoch"], facts["best_metric"]) == (3, 2, "i2t_r1")
    assert ("The best validation loss was 1.5 at epoch 2. best.pt holds epoch 3, the best val i2t_r1 (0.5)."
            in summary_paragraph(facts))
    assert best_checkpoint_sentence(facts) == (
        "best.pt holds epoch 3, the best val i2t_r1 (0.5), but at the last epoch 1 of 3 measures are better than "
        "there (psnr 14.5 → 16): for them, last.pt is the better model.")
    write_report(tmp_path, rows, None, info)
    report = (tmp_path / "report.md").read_text()
    assert "**Best val loss:** 1.5 (epoch 2) · **best.pt:** epoch 3, the best val i2t_r1 (0.5)" in report
    assert "<span>best.pt</span><b>epoch 3, the best val i2t_r1 (0.5)</b>" in (tmp_path / "report.html").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["best_metric"], summary["best_epoch"], summary["best_loss_epoch"]) == ("i2t_r1", 3, 2)
