"""The run report and the run comparison as one self-contained HTML page each: CSS inline, every image a
base64 data: URI, no scripts and no links out, so the file opens offline in any browser and can be mailed.

    text = render_report_html(parts, samples)   # parts: report.report_parts(...), as report.md is written from
    write_html(out / "report.html", text)
    write_html(dest / "comparison.html", render_comparison_html(parts, fields, plots))  # compare.comparison_parts

write_report (report.py) and compare_runs (compare.py) call it last, each with the parts it computed once for its
markdown too; this module imports neither.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from string import Template

from durable import write_text_atomic
from health.core import ANALYSES, STATUS_BY_SEVERITY, fmt, fmt_config

FOLDED_ROWS = 15  # a table longer than this (a verdict's, the probes': one row an epoch of a long run) starts folded

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --head: #f3f5f7;
        --healthy: #1a7f37; --warning: #b35900; --problem: #cf222e; --na: #6e7781; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 28px; margin: 0 0 16px; overflow-wrap: anywhere; }
h2 { font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 0 0 6px; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
h4 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
p { margin: 8px 0; }
ul { margin: 4px 0; padding-left: 22px; }
a { color: inherit; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
.muted { color: var(--muted); font-size: 13px; }
.facts { display: flex; flex-wrap: wrap; gap: 10px; }
.fact { flex: 1 0 auto; min-width: 120px; max-width: 100%; background: #fff; border: 1px solid var(--line);
        border-radius: 8px; padding: 10px 14px; }
.fact span { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.fact b { font-size: 19px; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.overview { display: flex; flex-wrap: wrap; gap: 8px; margin: 16px 0 0; }
.overview a { text-decoration: none; background: #fff; border: 1px solid var(--line); border-radius: 999px;
              padding: 4px 6px 4px 12px; display: flex; gap: 8px; align-items: center; }
table { border-collapse: collapse; width: auto; max-width: 100%; background: #fff; font-size: 14px; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.badge, .card { --c: var(--na); }  /* not enough data, unknown */
.healthy { --c: var(--healthy); } .warning { --c: var(--warning); } .problem { --c: var(--problem); }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
         color: #fff; background: var(--c); white-space: nowrap; }
.card { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--c); border-radius: 8px;
        padding: 14px 18px; margin: 14px 0; }
figure { margin: 16px 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; text-align: center; }
.samples { width: 100%; } .samples td { vertical-align: middle; }
.samples td:nth-child(n+3) { width: 40%; }
.samples img { width: 128px; height: auto; image-rendering: pixelated; display: block; border: 1px solid var(--line); }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
</style>
</head>
<body><main>
$body
</main></body>
</html>
""")


# ----------------------------------------------------------------------------
# small pieces

def esc(value) -> str:
    return html.escape(str(value))


def css_class(status) -> str:
    """'not enough data' -> 'not-enough-data': a verdict status as a CSS class (colours healthy/warning/problem)."""
    return "-".join(str(status).split())


def badge(status) -> str:
    return f'<span class="badge {esc(css_class(status))}">{esc(status)}</span>'


def is_numeric(text) -> bool:
    """'0.25', '-11%', 3, '—' (no value): a cell to right-align."""
    if text == "—":
        return True
    try:
        float(str(text).removesuffix("%"))
        return True
    except (TypeError, ValueError):
        return False


def table(rows) -> str:
    """A header row, then body rows; number cells are right-aligned."""
    header, *body = rows
    lines = ["<div class=\"scroll\"><table>", "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in header) + "</tr>"]
    for row in body:
        cells = (f'<td class="num">{esc(c)}</td>' if is_numeric(c) else f"<td>{esc(c)}</td>" for c in row)
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines + ["</table></div>"])


def folded(rows) -> str:
    """table(rows), folded when longer than FOLDED_ROWS (one row an epoch of a long run)."""
    header, shown = rows[0], table(rows)
    if len(rows) - 1 > FOLDED_ROWS:
        shown = f"<details><summary>Table: {len(rows) - 1} rows ({esc(', '.join(header))})</summary>{shown}</details>"
    return shown


def bullets(items) -> str:
    return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pil_png(image) -> bytes:
    """A PIL image as PNG bytes (modes PNG cannot hold, e.g. float 'F', become RGB)."""
    buffer = io.BytesIO()
    (image if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else image.convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


def figure(caption, path) -> str:
    """One plot file, embedded; a line saying so when it cannot be read (the page is still written)."""
    try:
        png = Path(path).read_bytes()
    except OSError as e:
        return f'<p class="muted">{esc(caption)}: not available ({esc(e)})</p>'
    return f'<figure><img src="{data_uri(png)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def figures(plots) -> str:
    """{caption: path} -> embedded figures."""
    if not plots:
        return '<p class="muted">No plots (no plottable metrics).</p>'
    return "\n".join(figure(caption, path) for caption, path in plots.items())


def fact(label, value) -> str:
    return f'<div class="fact"><span>{esc(label)}</span><b>{esc(value)}</b></div>'


# ----------------------------------------------------------------------------
# the run report

def metrics_section(parts) -> str:
    """The final metrics, the validation measures of the last epoch beside their baseline, the linear probes on z
    of every epoch, the configuration."""
    shown = [table(parts["final"])] if len(parts["final"]) > 1 else []
    if parts["measures"]:
        shown += ["<h4>Validation measures</h4>", table(parts["measures"])]
        shown += [f"<p>{esc(sentence)}</p>" for sentence in parts["sentences"]]
    if parts["probes"]:
        shown += ["<h4>Linear probes on z, by epoch</h4>", f"<p>{esc(parts['probes_text'])}</p>",
                  folded(parts["probes"])]
        shown += [f"<p>{esc(parts['probe_sentence'])}</p>"] if parts["probe_sentence"] else []
    if parts["key_config"]:
        shown.append(f'<p class="muted">Configuration: {esc(", ".join(parts["key_config"]))}</p>')
    config = parts["facts"].get("config") or {}
    if config:
        rows = [["field", "value"]] + [[k, fmt_config(v)] for k, v in config.items()]
        shown.append(f"<details><summary>All {len(config)} config fields</summary>{table(rows)}</details>")
    return "\n".join(shown) or '<p class="muted">No metrics were logged.</p>'


def verdict_card(number, analysis, title, verdict) -> str:
    parts = [f'<section class="card {esc(css_class(verdict.status))}" id="{esc(analysis)}">',
             f"<h3>{number}. {esc(title)} {badge(verdict.status)}</h3>", f"<p>{esc(verdict.summary)}</p>"]
    if verdict.evidence:
        parts += ["<h4>Evidence</h4>", bullets(verdict.evidence)]
    if verdict.table:
        parts.append(folded(verdict.table))
    if verdict.actions:
        parts += ["<h4>Actions</h4>", bullets(verdict.actions)]
    if getattr(verdict, "rule", ""):
        parts.append(f'<p class="muted">How it decides: {esc(verdict.rule)}.</p>')
    return "\n".join(parts + ["</section>"])


def findings_section(findings) -> str:
    if not findings:
        return '<p class="muted">None.</p>'
    header = ["step", "severity", "analysis", "code", "message", "action", "resolved"]
    lines = ["<div class=\"scroll\"><table>", "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for f in findings:
        lines.append(f'<tr><td class="num">{esc(f.step)}</td><td>{badge_for_severity(f.severity)}</td>'
                     f"<td>{esc(ANALYSES.get(f.analysis, f.analysis))}</td><td><code>{esc(f.code)}</code></td>"
                     f"<td>{esc(f.message)}</td><td>{esc(f.action)}</td><td>{esc(f.resolved or '—')}</td></tr>")
    return "\n".join(lines + ["</table></div>"])


def badge_for_severity(severity) -> str:
    """info/warning/error, coloured like the verdict they lead to (healthy/warning/problem)."""
    return f'<span class="badge {esc(STATUS_BY_SEVERITY.get(severity, ""))}">{esc(severity)}</span>'


def samples_section(samples) -> str:
    header = ["validation image", "reconstruction", "true caption", "generated caption"]
    lines = ['<div class="scroll"><table class="samples">',
             "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for image, recon, caption, generated in samples:
        lines.append(f'<tr><td><img src="{data_uri(pil_png(image))}" alt="validation image"></td>'
                     f'<td><img src="{data_uri(pil_png(recon))}" alt="reconstruction"></td>'
                     f"<td>{esc(caption)}</td><td>{esc(generated)}</td></tr>")
    return "\n".join(lines + ["</table></div>"])


def render_report_html(parts, samples=()) -> str:
    """One self-contained page: headline, summary, final metrics, a card per analysis, findings, plots and
    caption samples. parts: report.report_parts(...), the same report.md is written from; samples [(PIL image,
    PIL reconstruction, true caption, generated caption)]."""
    facts, verdicts, titles = parts["facts"], parts["verdicts"], parts["analyses"]
    best, loss_epoch = fmt(facts.get("best_val_loss")), facts.get("best_loss_epoch", facts.get("best_epoch"))
    if loss_epoch is not None:
        best += f" (epoch {fmt(loss_epoch)})"
    headline = [fact("status", facts.get("status") or "unknown"), fact("best val loss", best),
                fact("training time", parts["training_time"]), fact("device", facts.get("device") or "—"),
                fact("steps", facts.get("steps", "—"))]
    if parts["best_pt"]:
        headline.insert(2, fact("best.pt", parts["best_pt"]))
    if facts.get("epochs") is not None:
        headline.append(fact("epochs", fmt(facts["epochs"], 3)))
    body = [f"<h1>Run report: {esc(facts.get('run', ''))}</h1>", '<div class="facts">' + "".join(headline) + "</div>"]
    if verdicts:
        body.append('<nav class="overview">' + "".join(
            f'<a href="#{esc(a)}">{esc(titles[a])} {badge(v.status)}</a>' for a, v in verdicts.items()) + "</nav>")
    body += ["<h2>Summary</h2>", f"<p>{esc(parts['summary'])}</p>", "<h2>Final metrics</h2>", metrics_section(parts)]
    body.append("<h2>Analyses</h2>")
    body += [verdict_card(i, a, titles[a], v) for i, (a, v) in enumerate(verdicts.items(), 1)] or [
        '<p class="muted">No analyses.</p>']
    body += ["<h2>Findings</h2>", findings_section(parts["findings"]), "<h2>Plots</h2>", figures(parts["plots"])]
    if samples:
        body += ["<h2>Caption samples</h2>", samples_section(samples)]
    if facts.get("wandb_run"):
        body.append(f'<p class="muted">W&amp;B run: <code>{esc(facts["wandb_run"])}</code></p>')
    return PAGE.substitute(title=esc(f"Run report: {facts.get('run', '')}"), body="\n".join(body))


# ----------------------------------------------------------------------------
# the comparison of runs

def render_comparison_html(parts, fields, plots) -> str:
    """compare_runs' page: what differs between the runs and how each did, the best run, the overlay plots.
    parts: compare.comparison_parts (runs, best, table, measures), the same the markdown is written from;
    fields: the config fields that differ; plots {name: png path}."""
    best = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", esc(parts["best"]))  # markdown bold
    differ = esc(", ".join(fields)) if fields else "none"
    runs = parts["runs"]
    body = [f"<h1>Comparison of {runs} runs</h1>", f"<p>{best}</p>", table(parts["table"]),
            f'<p class="muted">Config fields that differ: {differ}.</p>']
    measures = parts["measures"]
    if measures:
        body += ["<h2>Validation measures (last epoch)</h2>", table(measures)]
    body += ["<h2>Plots</h2>", figures(plots)]
    return PAGE.substitute(title=esc(f"Comparison of {runs} runs"), body="\n".join(body))


def write_html(path, text) -> Path:
    """Write text to path in UTF-8 through a temporary file (durable.write_text_atomic): never half a page."""
    return write_text_atomic(path, text)
