"""The static report page ``index.html``: summary tables, figures and audio players, relative links only.

The page works opened straight from disk. A small inline script marks every ``<img>`` and ``<audio>``
with ``data-loaded="ok"`` or ``"error"`` once it loaded (or failed): the browser test reads those
marks, and a reader sees broken media outlined in red.
"""

from __future__ import annotations

from html import escape
from typing import Any

from codec.evaluation.scoring import CODEC, METRICS, OPUS

MARK = "★"  # marks a reference codec's rows and players

# The page fits 1,300 px (tests/codec/evaluation/test_report.py checks it in Chromium): the summary table's
# headers wrap at their underscores and it scrolls inside its own box on a narrower window.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222;
       box-sizing: border-box; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.wide { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1.5em; }
.wide table { margin: 0; font-size: 0.8em; }
table.summary th { vertical-align: bottom; padding: 0.25em 0.4em; }
table.summary td { padding: 0.25em 0.4em; white-space: nowrap; }
tr.opus td { background: #fff6ec; }
tr.reference td { background: #eef6ff; }
tr.group td { font-weight: 600; background: #f4f4f4; white-space: normal; }
tr.group.reference td { background: #dcebfb; }
td.wrap { white-space: normal; }
img { max-width: 100%; }
[data-loaded="error"] { outline: 3px solid red; }
.players td, .info td { text-align: left; }
.note { color: #666; font-size: 0.9em; }
"""

_SCRIPT = """
(function () {
  var speed = window.telucodecTimings, table = document.getElementById("speed");
  if (speed && table) {
    var num = function (v, unit) { return typeof v === "number" ? v.toFixed(1) + unit : "–"; };
    var rows = [["device", speed.device], ["audio", num(speed.audio_seconds, " s")],
                ["encode", "x" + num(speed.encode_rtf, " real time")],
                ["decode", "x" + num(speed.decode_rtf, " real time")]];
    table.tBodies[0].innerHTML = rows.map(function (r) {
      return "<tr><td>" + r[0] + "</td><td>" + String(r[1]).replace(/[<>&]/g, "") + "</td></tr>";
    }).join("");
    table.dataset.speed = "shown";
  }
  function mark(el, state) { if (!el.dataset.loaded) { el.dataset.loaded = state; } }
  document.querySelectorAll("img").forEach(function (img) {
    if (img.complete) { mark(img, img.naturalWidth > 0 ? "ok" : "error"); return; }
    img.addEventListener("load", function () { mark(img, "ok"); });
    img.addEventListener("error", function () { mark(img, "error"); });
  });
  document.querySelectorAll("audio").forEach(function (audio) {
    if (audio.readyState >= 1) { mark(audio, "ok"); return; }
    if (audio.error) { mark(audio, "error"); return; }
    audio.addEventListener("loadedmetadata", function () { mark(audio, "ok"); });
    audio.addEventListener("error", function () { mark(audio, "error"); });
  });
})();
"""


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _header(name: str) -> str:
    """A metric's column header that may wrap at its underscores."""
    return "_<wbr>".join(escape(part) for part in name.split("_"))


def _row(css: str, label: str, means: dict[str, Any], entropy: bool) -> str:
    failed = sum(means.get(f"{n}_failed", 0) for n in ("stoi", "pesq_wb"))
    cells = "".join(f"<td>{_number(means.get(name))}</td>" for name in METRICS)
    return (
        f'<tr class="{css}"><td>{escape(label)}</td><td>{_number(means["kbps"])}</td>'
        f"<td>{_number(means.get('entropy_kbps')) if entropy else ''}</td>{cells}<td>{failed}</td></tr>"
    )


def reference_note(name: str, label: str, utterances: int, num_levels: int) -> str:
    """The sentence above a summary table that has a reference codec's rows."""
    return (
        f'<p class="note reference">{MARK} rows: <b>{escape(label)}</b>, a reference codec scored on the same '
        f"{utterances} utterances as this run's model (the <code>codec</code> rows) at the same level counts "
        f"(clipped to its {num_levels}), without DNSMOS: what a codec trained on real speech reaches on them "
        f"(<code>metrics.json</code>: <code>reference.{escape(name)}</code>).</p>"
    )


def summary_table(summary: dict[str, Any], references: dict[str, str] | None = None) -> str:
    """One row per system and setting: bitrates and the mean of every metric; a reference codec's rows
    (``summary["reference"][name]``, labelled by ``references[name]``) after the codec's, marked."""
    columns = len(METRICS) + 4
    head = "".join(f"<th>{_header(name)} {'↑' if up else '↓'}</th>" for name, up in METRICS.items())
    rows = []
    scored = summary.get("reference", {})
    if scored and summary.get(CODEC):
        rows.append(f'<tr class="group codec"><td colspan="{columns}">this run\'s model</td></tr>')
    rows += [_row(CODEC, f"codec {setting}", means, True) for setting, means in summary.get(CODEC, {}).items()]
    for name, settings in scored.items():
        label = (references or {}).get(name, name)
        rows.append(f'<tr class="group reference"><td colspan="{columns}">{MARK} {escape(label)}</td></tr>')
        rows += [
            _row("reference", f"{MARK} {name} {setting}", means, True)
            for setting, means in settings.items()
            if isinstance(means, dict)
        ]
    if scored and summary.get(OPUS):
        rows.append(f'<tr class="group opus"><td colspan="{columns}">Opus</td></tr>')
    rows += [_row(OPUS, f"opus {setting}", means, False) for setting, means in summary.get(OPUS, {}).items()]
    original = summary.get("original")
    if original:
        cells = "".join(f"<td>{_number(original.get(name))}</td>" for name in METRICS)
        rows.insert(
            0,
            f'<tr class="original"><td>original ({original["utterances"]} utterances)</td><td></td>'
            f"<td></td>{cells}<td></td></tr>",
        )
    return (
        f'<div class="wide"><table class="summary"><thead><tr><th>system</th><th>kbps</th><th>entropy kbps</th>'
        f"{head}<th>failed scores</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def quantizer_table(quantizer: dict[str, Any], entropy_bits: list[float]) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td>{_number(p)}</td><td>{_number(u)}</td><td>{_number(b)}</td></tr>"
        for i, (p, u, b) in enumerate(
            zip(quantizer["perplexity"].values(), quantizer["used_fraction"].values(), entropy_bits)
        )
    )
    return (
        '<table class="quantizer"><thead><tr><th>level</th><th>perplexity</th><th>used fraction</th>'
        f"<th>entropy (bits/frame)</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<p>Nominal {_number(quantizer['nominal_kbps'])} kbps, entropy-coded {_number(quantizer['entropy_kbps'])} "
        "kbps (all levels).</p>"
    )


def tokens_section(stats: dict[str, Any]) -> str:
    """The tokenized corpora (``reports/tokens/stats.json`` of the tokenize stage): size, bitrates, and the
    per-level use of the codebooks over each whole corpus."""
    blocks = []
    for name, corpus in stats.get("corpora", {}).items():
        splits = ", ".join(f"{split} {s['rows']}" for split, s in corpus["splits"].items())
        rows = "".join(
            f"<tr><td>{lv['level']}</td><td>{_number(lv['used_fraction'])}</td><td>{_number(lv['perplexity'])}</td>"
            f"<td>{_number(lv['entropy_bits'])}</td><td>{_number(lv['model_bits'])}</td></tr>"
            for lv in corpus["levels"]
        )
        blocks.append(
            f"<h3>{escape(name)}</h3><p>{corpus['rows']} segments ({escape(splits)}), {_number(corpus['hours'])} h, "
            f"{corpus['tokens']} tokens, {corpus['skipped']} skipped; {_number(corpus['nominal_kbps'])} kbps nominal, "
            f"{_number(corpus['entropy_kbps'])} kbps at the codes' entropy, {_number(corpus['model_coded_kbps'])} "
            "kbps range-coded with the model's distributions.</p>"
            '<table class="quantizer"><thead><tr><th>level</th><th>used fraction</th><th>perplexity</th>'
            f"<th>entropy (bits/frame)</th><th>range-coded (bits/frame)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "<h2>Tokenized corpora</h2>" + "".join(blocks) if blocks else ""


def example_block(title: str, spectrogram: str, players: list[tuple[str, str]]) -> str:
    """A spectrogram image and one ``<audio>`` per version: ``players`` is ``(label, relative src)``."""
    rows = "".join(
        f'<tr><td>{escape(label)}</td><td><audio controls preload="metadata" src="{escape(src)}"></audio></td></tr>'
        for label, src in players
    )
    return (
        f'<h3>{escape(title)}</h3><img class="spectrogram" src="{escape(spectrogram)}" alt="spectrograms of '
        f'{escape(title)}"><table class="players"><tbody>{rows}</tbody></table>'
    )


def render_page(info: dict[str, str], sections: list[str], timings_href: str) -> str:
    """The full page: ``info`` (label -> text) on top, then the per-set ``sections`` (HTML).

    Speed figures are not embedded, so the page is identical across rebuilds: the page loads them from the
    script beside the timings json (``timings_href`` with ``.js``), which sets ``window.telucodecTimings``."""
    script_href = timings_href.removesuffix(".json") + ".js"
    facts = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in info.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>TeluCodec evaluation</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>TeluCodec evaluation</h1>
<table class="info"><tbody>{facts}</tbody></table>
<h2>Speed</h2>
<table class="info" id="speed" data-speed="missing"><tbody><tr><td>No speed figures: {escape(script_href)}
was not found next to this page.</td></tr></tbody></table>
<p class="note">Encode and decode real-time factors (seconds of audio per second of compute, every level),
measured on the machine that ran this evaluation: they depend on the machine, so they are kept out of the
reproducible outputs, in <a href="{escape(timings_href)}">{escape(timings_href)}</a>, and shown here from
<code>{escape(script_href)}</code>.</p>
<p class="note">↑ higher is better, ↓ lower is better. Ratios in dB; distances are 0 for identical signals.
Definitions: <code>codec/dsp/metrics.py</code> and the README.
Means skip failed scores (counted in the last column).</p>
{"".join(sections)}
<script src="{escape(script_href)}"></script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
