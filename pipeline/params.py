"""The one typed view of ``params.yaml`` shared by every stage, DVC and Snakemake.

``load_params()`` rejects unknown keys, missing keys and wrong types with the dotted
path of the culprit, so ``dvc exp run -S train.lrr=1`` fails before any work starts.
The section classes come from torch-free modules: importing this one (every stage CLI, the
Snakefile at parse time) loads neither torch nor scikit-learn (tests/pipeline/test_params.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codec.config.convert import ConfigError, from_dict
from codec.config.evaluate import EvaluateConfig
from codec.config.export import ExportConfig
from codec.config.loss import LossConfig
from codec.config.model import ModelConfig
from codec.config.prepare import PrepareConfig
from codec.config.quantizer import QuantizerConfig
from codec.config.seed_codebooks import SeedCodebooksConfig
from codec.config.synth import SynthConfig
from codec.config.tokenize import TokenizeConfig
from codec.config.train import TrainConfig

DEFAULT_PATH = Path("params.yaml")


@dataclass(frozen=True)
class Params:
    seed: int
    sample_rate: int
    synth: SynthConfig
    prepare: PrepareConfig
    quantizer: QuantizerConfig
    model: ModelConfig
    loss: LossConfig
    seed_codebooks: SeedCodebooksConfig
    train: TrainConfig
    export: ExportConfig
    tokenize: TokenizeConfig
    evaluate: EvaluateConfig


def merge_params(base: Any, override: Any) -> Any:
    """``override`` over ``base`` (both parsed params mappings): mappings merge key by key, anything else (lists
    too) is replaced, as Snakemake merges a ``--configfile``. How recipe and override files apply to params.yaml."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_params(base[key], value) if key in base else value
        return merged
    return override


def params_from_dict(data: Any) -> Params:
    """Validate an already-parsed mapping (Snakemake's ``config``) as :class:`Params`."""
    return from_dict(Params, data, "params")


def load_params(path: str | Path = DEFAULT_PATH) -> Params:
    """Read and validate ``params.yaml``; exit with a clear message when it is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return params_from_dict(data)
    except (OSError, yaml.YAMLError, ConfigError) as exc:
        sys.exit(f"error: {path}: {exc}")
