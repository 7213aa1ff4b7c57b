"""Settings of the export (the portable codec file, written by codec.formats.export): the ``export:`` section
of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ExportConfig:
    """``export:`` section of params.yaml."""

    uniform_mix: float = 0.01  # weight of the uniform distribution mixed into each level's EMA usage
    # Storage of the weights and codebooks: float16 halves the file (the pretrained model's, kept in git);
    # loading computes in float32 either way. The code distributions stay float64.
    dtype: Literal["float32", "float16"] = "float32"

    def __post_init__(self) -> None:
        if not 0.0 < self.uniform_mix <= 1.0:
            raise ValueError("uniform_mix must be in (0, 1]: it is what keeps every code probability above 0")
