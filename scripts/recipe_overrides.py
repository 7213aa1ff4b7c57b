"""Print a recipe file (``workflow/recipes/<name>.yaml``) as ``dvc exp run`` parameter overrides.

    eval "dvc exp run $(python scripts/recipe_overrides.py workflow/recipes/cpu.yaml) \\
        -S prepare.corpus=../shared/corpora/chai-bisket-te -S prepare.format=ulca"

The overrides are quoted for the shell (a list such as ``[5,10]`` must reach DVC as one word, unglobbed), so
the line goes through ``eval``: a bare ``$(...)`` would pass the quotes on to DVC.

Every leaf of the recipe becomes one ``-S key=value`` (Hydra's override grammar, which DVC parses): lists
replace lists whole, as when Snakemake merges the same file with ``--configfile``. The merged params are
validated first, so a recipe with a typo stops here with the key named.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from codec.config.convert import ConfigError
from pipeline.params import merge_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``; lists and scalars are leaves."""
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        out += flatten(value, f"{path}.") if isinstance(value, dict) and value else [(path, value)]
    return out


def hydra_value(value: Any) -> str:
    """A YAML value in Hydra's grammar: JSON for numbers, booleans, null and lists; bare or quoted strings."""
    if isinstance(value, str):
        return json.dumps(value) if not value or not all(c.isalnum() or c in "-_./" for c in value) else value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return json.dumps(value)


def overrides(recipe: dict[str, Any]) -> list[str]:
    return [f"{key}={hydra_value(value)}" for key, value in flatten(recipe)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="validated against these params")
    args = parser.parse_args(argv)
    try:
        recipe = yaml.safe_load(args.recipe.read_text(encoding="utf-8")) or {}
        params_from_dict(merge_params(yaml.safe_load(args.params.read_text(encoding="utf-8")), recipe))
    except (OSError, yaml.YAMLError, ConfigError) as exc:
        sys.exit(f"error: {args.recipe}: {exc}")
    print(" ".join(f"-S {shlex.quote(item)}" for item in overrides(recipe)))


if __name__ == "__main__":
    main()
