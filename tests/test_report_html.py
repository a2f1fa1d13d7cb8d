"""report_html.py: the run report and the comparison as self-contained HTML pages (nothing loaded from outside)."""
import base64
import io
from html.parser import HTMLParser

import pytest
from PIL import Image

from compare import comparison_parts
from health import ANALYSES, Finding, Verdict
from report import pyplot, report_parts, run_facts
from report_html import render_comparison_html, render_report_html, write_html

PLOT_SIZE = (200, 150)  # pixels of the test plot: figsize (4, 3) inches at dpi 50
SAMPLE_SIZES = [(64, 64), (64, 64), (48, 32), (48, 32)]  # image, recon, image, recon
SCRIPT = "<script>alert('x')</script>"

FACTS = {
    "run": "lr_sweep_3", "status": "finished", "device": "NVIDIA H200", "training_time_s": 3725.0,
    "best_val_loss": 1.2345, "best_epoch": 7, "steps": 4800, "epochs": 8.0, "wandb_run": "https://wandb.ai/me/p/runs/x",
    "final_train": {"loss_total": 1.1, "caption_accuracy": 0.61, "image_mse": 0.012},
    "final_val": {"loss_total": 1.2345, "caption_accuracy": 0.58, "i2t_r1": 0.125, "t2i_median_rank": 4.0,
                  "bleu4": 0.2468, "cider_d": 1.357, "psnr": 24.68, "ssim": 0.7531, "grounded_position": 0.8642},
    "config": {"learning_rate": 0.0003, "batch_size": 64},
}
STATUSES = dict(zip(ANALYSES, ("healthy", "warning", "problem", "not enough data", "healthy")))
VERDICTS = {
    analysis: Verdict(status, f"{analysis} summary", evidence=[f"{analysis} evidence line"],
                      actions=[f"{analysis} action"] if status != "healthy" else [],
                      table=[["epoch", "gap %"], ["1", "-11%"]] if analysis == "overfitting" else [],
                      rule=f"{analysis} rule")
    for analysis, status in STATUSES.items()
}
FINDINGS = [
    Finding("dominant_loss", "component_dominates", "warning", 1200, "caption is 91% of loss_total <b>", "lower it"),
    Finding("latent_space", "latent_collapse", "error", 2400, "latent_diversity 1e-07", "raise alignment"),
]


def page(facts, verdicts, findings, plots, samples=(), probes=()):
    """report.html's text, from the parts report.md is written from too."""
    return render_report_html(report_parts(facts, verdicts, findings, plots, probes), samples)


class Page(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def assert_self_contained(text):
    """No link or source outside the page; return the sizes of the embedded images, in page order."""
    page = Page(text)
    assert "://" not in "".join(v or "" for _, attrs in page.tags for v in attrs.values())  # no http(s), file
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    sizes = []
    for _, attrs in page.tags:
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]  # a jump within the page
        if "src" in attrs:
            assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:80]
            image = Image.open(io.BytesIO(base64.b64decode(attrs["src"].partition(",")[2], validate=True)))
            image.load()
            sizes.append(image.size)
    assert "url(" not in text and "@import" not in text  # CSS fetches nothing either
    return sizes


@pytest.fixture(scope="module")
def plot(tmp_path_factory):
    """A real small matplotlib PNG, drawn as report.py draws its plots."""
    path = tmp_path_factory.mktemp("plots") / "loss_components.png"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [3, 1, 2])
    fig.savefig(path, dpi=50)
    plt.close(fig)
    return path


@pytest.fixture(scope="module")
def samples():
    return [(Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), "gray"),
             "a tent on the right, beneath a full moon", "a tent on the left"),
            (Image.new("L", (48, 32), 200), Image.new("F", (48, 32), 0.5),  # grayscale; float becomes RGB
             f"two palms {SCRIPT}", "two palms & a boulder")]


def test_the_report_shows_headline_metrics_every_analysis_with_its_verdict_findings_and_captions(plot, samples):
    text = page(FACTS, VERDICTS, FINDINGS, {"loss_components": plot}, samples)
    shown = " ".join(Page(text).text)
    for fact in ("lr_sweep_3", "finished", "1.234 (epoch 7)", "1 h 02 min", "NVIDIA H200", "4800"):
        assert fact in shown, fact
    for metric in ("caption_accuracy", "0.58", "i2t_r1", "0.125", "t2i_median_rank", "bleu4", "0.2468", "cider_d",
                   "psnr", "24.68", "ssim", "grounded_position", "0.8642", "learning_rate=0.0003"):
        assert metric in shown, metric
    assert "i2t_r5" not in shown  # a measure that was not logged gets no row
    for analysis, title in ANALYSES.items():
        status = STATUSES[analysis]
        assert title in shown and f"{analysis} summary" in shown and f"{analysis} rule" in shown
        assert f'class="card {status.replace(" ", "-")}" id="{analysis}"' in text  # coloured by its verdict
    assert {"healthy", "warning", "problem", "not enough data"} <= set(Page(text).text)  # the badges
    assert "overfitting action" in shown and "-11%" in shown
    assert "component_dominates" in shown and "caption is 91% of loss_total <b>" in shown  # escaped, shown as text
    assert "Weighted loss components" in shown  # report.PLOTS' title of that plot
    for caption in ("a tent on the right, beneath a full moon", "a tent on the left", "two palms & a boulder"):
        assert caption in shown
    assert "https://wandb.ai/me/p/runs/x" in shown  # shown as text, not as a link


def test_the_report_loads_nothing_from_outside_and_every_image_is_an_embedded_png_of_its_size(plot, samples):
    text = page(FACTS, VERDICTS, FINDINGS, {"loss_components": plot}, samples)
    assert assert_self_contained(text) == [PLOT_SIZE] + SAMPLE_SIZES


def test_a_long_verdict_table_starts_folded_and_a_short_one_does_not():
    """One row an epoch: 100 epochs on a GPU would bury the other analyses under the overfitting table."""
    long = [["epoch", "gap %"]] + [[str(e), "+5%"] for e in range(1, 101)]
    verdicts = {"hardware": VERDICTS["overfitting"], "overfitting": Verdict("warning", "s", table=long)}
    text = page(FACTS, verdicts, [], {})
    tags = [tag for tag, _ in Page(text).tags]
    assert tags.count("details") == 2  # the folded table and the config fields
    assert "Table: 100 rows (epoch, gap %)" in " ".join(Page(text).text)
    folded = text[text.index("<details><summary>Table"):]
    assert folded.index("<td class=\"num\">100</td>") < folded.index("</details>")  # every row is still there
    assert "-11%" in text[:text.index("<details><summary>Table")]  # the 1-row table stays open


def test_the_probes_get_their_own_table_by_epoch_folded_when_long_and_stay_out_of_the_last_epochs_measures():
    facts = {**FACTS, "final_val": {**FACTS["final_val"], "probe_kind": 0.4321},
             "probe_words": {"best": "dusk 0.97, night 0.95, woodcut 0.93", "worst": "view 0.5, print 0.51, a 0.52"}}
    probes = [["epoch", "probe_word_auc", "probe_kind"], ["chance", "0.5", "0.06"]]
    short = page(facts, {}, [], {}, probes=probes + [["1", "0.61", "0.2"]])
    measures = short[short.index("<h4>Validation measures</h4>"):short.index("<h4>Linear probes on z, by epoch</h4>")]
    assert "grounded_position" in measures and "probe_kind" not in measures  # tabled by epoch below instead
    shown = " ".join(Page(short).text)
    assert "z predicts these words best: dusk 0.97, night 0.95, woodcut 0.93; worst: view 0.5" in shown
    assert "<td>chance</td>" in short and "Table: " not in short
    long = page(facts, {}, [], {}, probes=probes + [[str(e), "0.6", "0.2"] for e in range(1, 21)])
    assert "Table: 21 rows (epoch, probe_word_auc, probe_kind)" in " ".join(Page(long).text)
    assert "Linear probes on z" not in page(FACTS, {}, [], {})  # a run without probes


def test_text_from_captions_and_findings_is_escaped_not_markup(samples):
    findings = [Finding("hardware", "input_bound", "warning", 5, SCRIPT, SCRIPT)]
    text = page({**FACTS, "run": SCRIPT}, {}, findings, {}, samples)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert SCRIPT in " ".join(Page(text).text)


def test_the_report_of_a_run_without_rows_or_plots_is_still_a_page():
    text = page(run_facts("out/empty", [], {}), {}, [], {})
    shown = " ".join(Page(text).text)
    assert "Run report: empty" in shown and "unknown" in shown and "There is no validation result." in shown
    assert assert_self_contained(text) == []


def test_the_comparison_shows_what_differs_how_each_run_did_and_embeds_the_overlays(plot):
    summaries = [{"config": {"learning_rate": 0.001, "batch_size": 64}, "best_val_loss": 1.5, "best_epoch": 6,
                  "final_train": {"loss_total": 1.4}, "final_val": {"caption_accuracy": 0.5}, "status": "finished",
                  "training_time_s": 90.0},
                 {"config": {"learning_rate": 0.0005, "batch_size": 64}, "best_val_loss": 1.2, "best_epoch": 7,
                  "final_train": {"loss_total": 1.1}, "status": SCRIPT}]
    parts = comparison_parts(["run_a", "run_b"], summaries, ["learning_rate"])
    text = render_comparison_html(parts, ["learning_rate"], {"loss_total of every run": plot})
    shown = " ".join(Page(text).text)
    for expected in ("Comparison of 2 runs", "run_a", "run_b", "learning_rate", "0.001", "0.0005", "1 min 30 s",
                     "loss_total of every run", SCRIPT):
        assert expected in shown, expected
    assert "batch_size" not in shown  # the same in both runs
    assert "<b>run_b</b>" in text and "**" not in text  # the best run, bold
    assert "<script>" not in text
    assert assert_self_contained(text) == [PLOT_SIZE]


def test_write_html_replaces_the_page_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "report.html"
    write_html(path, "<p>old</p>")
    assert write_html(path, "<p>new ✓</p>") == path
    assert path.read_text(encoding="utf-8") == "<p>new ✓</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
