"""docs/recipes/README.md's table of runs is what the runs' results.json files say (scripts/recipe_log.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from scripts import recipe_log

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_log_is_current():
    assert recipe_log.main(["--check"]) == 0


def _run(recipe: str, pesq: float, with_opus: bool) -> dict:
    def scores(p: float, kbps: float = 0.0) -> dict:
        return {"pesq_wb": p, "stoi": 0.9, "mel_distance": 0.2, "kbps": kbps}

    if recipe.startswith("25hz"):  # 25 frames/s: 12 levels are 3 kbps, 6 levels 1.5 kbps
        test = {"codec": {"q12": scores(pesq, 3.0), "q6": scores(pesq - 0.5, 1.5)}}
    else:
        test = {"codec": {"q12": scores(pesq, 6.0), "q6": scores(pesq - 0.5, 3.0)}}
    if with_opus:
        test["opus"] = {"6kbps": scores(1.5), "8kbps": scores(2.5), "12kbps": scores(3.2)}
    return {
        "recipe": recipe,
        "steps": 1200,
        "train_seconds": 300.4,
        "seconds_per_step": {"generator": 0.25, "adversarial": None},
        "metrics": {"test": test},
    }


def test_a_new_run_gets_its_row_in_order_and_a_stale_log_is_caught(tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "README.md").write_text(f"# Runs\n\n{recipe_log.BEGIN}\nold\n{recipe_log.END}\n\nprose\n")
    for name, recipe, pesq in (("a", "slow", 1.8), ("b/1000steps", "fast", 2.4), ("c", "25hz", 2.0)):
        (folder / name).mkdir(parents=True)
        runs = {"budget": "x", "results": [_run(recipe, pesq, with_opus=name == "a")]}
        (folder / name / "results.json").write_text(json.dumps(runs))
    assert recipe_log.main(["--recipes", str(folder), "--check"]) == 1
    assert recipe_log.main(["--recipes", str(folder)]) == 0
    text = (folder / "README.md").read_text()
    assert text.startswith("# Runs\n\n") and text.endswith("\n\nprose\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `fast` | [`b/1000steps/`](b/1000steps/) | 1,200 | 300 | 0.250 | 2.40 / 0.900 / 0.200 "
        "| 1.90 / 0.900 / 0.200 | – |",
        "| `slow` | [`a/`](a/) | 1,200 | 300 | 0.250 | 1.80 / 0.900 / 0.200 | 1.30 / 0.900 / 0.200 | – |",
        "| `25hz` | [`c/`](c/) | 1,200 | 300 | 0.250 | – | 2.00 / 0.900 / 0.200 | 1.50 / 0.900 / 0.200 |",
    ]
    assert "| Opus 6 / 8 / 12 kbps (same utterances) | | | | | 1.50 / 0.900 / 0.200 | 2.50" in text
    assert recipe_log.main(["--recipes", str(folder), "--check"]) == 0
    shutil.rmtree(folder / "a")
    assert recipe_log.main(["--recipes", str(folder), "--check"]) == 1  # a run removed: stale again
