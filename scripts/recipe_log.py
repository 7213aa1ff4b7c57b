"""The recipe log of docs/recipes/README.md, written from the runs' own results.json files, never by hand.

Every ``results.json`` under docs/recipes/ (what ``experiments.recipe_budget`` writes) gives one row per recipe
run: its folder, steps, training seconds and seconds per step, and PESQ-WB / STOI / mel distance on the test
split at 6, 3 and 1.5 kbps (by each score's bitrate, not its level count: a 25 frames/s codec's 12 levels are its
3 kbps); Opus at 6, 8 and 12 kbps (the same utterances in every run) from the newest run
that scored it. The table replaces the block between the two markers of docs/recipes/README.md:

    python scripts/recipe_log.py            # rewrite the block
    python scripts/recipe_log.py --check    # exit 1 when the block is not what the results.json files give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "docs" / "recipes"
BEGIN = "<!-- recipe-log: begin (written by scripts/recipe_log.py from every results.json below; do not edit) -->"
END = "<!-- recipe-log: end -->"
KBPS = (6.0, 3.0, 1.5)  # the table's columns
OPUS = ("6kbps", "8kbps", "12kbps")


def triple(scores: dict[str, Any] | None) -> str:
    """``PESQ-WB / STOI / mel distance`` of one system at one bitrate, or a dash when it was not scored."""
    if not scores or scores.get("pesq_wb") is None:
        return "–"
    return f"{scores['pesq_wb']:.2f} / {scores['stoi']:.3f} / {scores['mel_distance']:.3f}"


def runs(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder relative to ``folder``, result row) of every recipe run in every results.json under ``folder``."""
    found = []
    for path in sorted(folder.rglob("results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for row in data.get("results", []):
            found.append((path.parent.relative_to(folder).as_posix(), row))
    return found


def at_kbps(codec: dict[str, Any], kbps: float) -> dict[str, Any] | None:
    """The codec's scores at ``kbps``, or None. Each entry of evaluate's ``codec`` metrics names its bitrate; an
    early results.json without it (``q12``: 12 levels) is from a 50 frames/s x 10 bits codec, 0.5 kbps a level."""
    return next((v for q, v in codec.items() if abs(v.get("kbps", int(q[1:]) * 0.5) - kbps) < 1e-6), None)


def number(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table(folder: Path) -> str:
    """The Markdown block: one row per run, best 6 kbps PESQ-WB first (then 3 and 1.5 kbps), then Opus."""
    rows, opus = [], None
    for where, row in runs(folder):
        test = row.get("metrics", {}).get("test", {})
        codec = test.get("codec", {})
        if test.get("opus"):
            opus = test["opus"]
        train = row.get("train_seconds")
        per_step = row.get("seconds_per_step")  # {"generator": s, "adversarial": s or None} since round 2
        if isinstance(per_step, dict):
            per_step = per_step.get("generator")
        scores = [at_kbps(codec, kbps) for kbps in KBPS]
        rows.append(
            (
                tuple(-((s or {}).get("pesq_wb") or 0.0) for s in scores),
                f"| `{row['recipe']}` | [`{where}/`]({where}/) | {number(row.get('steps'), ',')} "
                f"| {number(train, ',.0f')} | {number(per_step, '.3f')} | "
                + " | ".join(triple(s) for s in scores)
                + " |",
            )
        )
    head = [
        "| recipe | run | steps | train s | s/step | " + " | ".join(f"{kbps:g} kbps" for kbps in KBPS) + " |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",  # s/step: the generator's step, as calibrated
    ]
    body = [line for _, line in sorted(rows)]
    if opus:
        opus_cells = " | ".join(triple(opus.get(k)) for k in OPUS)
        body.append(f"| Opus 6 / 8 / 12 kbps (same utterances) | | | | | {opus_cells} |")
    note = "PESQ-WB / STOI / mel distance on chai-bisket-te's test split; a dash: not scored (or not kept)."
    return "\n".join([BEGIN, "", note, "", *head, *body, "", END])


def replace_block(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"recipe_log: no block between {BEGIN!r} and {END!r} to replace")
    return text[:start] + block + text[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=Path, default=RECIPES, help="folder of the runs and of README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md's block is stale")
    args = parser.parse_args(argv)
    readme = args.recipes / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = replace_block(text, table(args.recipes))
    if args.check:
        if new != text:
            print(f"{readme}: the recipe log is stale: run python scripts/recipe_log.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        tmp = readme.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(readme)
    print(f"{readme}: {len(runs(args.recipes))} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
