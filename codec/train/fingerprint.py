"""What makes two training runs the same run: a fingerprint carried in every checkpoint.

A run resumes from a checkpoint only when the fingerprints match, whatever else happened to the
workspace: a stage whose logs were deleted (a mistyped parameter under ``dvc repro`` deletes a
stage's outputs before its command fails) picks up its finished checkpoint and replays it in
seconds, while a checkpoint written by other parameters, other data or other code is never reused.

The fingerprint is a digest per part, so the note that sets checkpoints aside can say *what* changed:

- ``train params`` / ``loss params``: every setting that changes the weights (logging, validation,
  checkpoint cadence, workers and device do not, see :data:`OPERATIONAL_KEYS`);
- ``seed``, ``init weights`` (file digest), ``shards`` (the manifest's digest: it lists every part's sha256);
- ``code``: every ``.py`` file of the ``codec`` package, by path and content (:func:`codec.runtime.io.code_digest`,
  which ``tokenize``'s fingerprint uses too). Coarse on purpose: a change to any module the trainer might reach
  retrains, never the reverse;
- ``torch``: the version, whose kernels decide the numbers.

The number of ranks is left out: a run may resume on another number of GPUs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from codec.config.convert import to_dict
from codec.data.shards import MANIFEST
from codec.runtime.io import CODE_ROOT, code_digest, file_sha256

OPERATIONAL_KEYS = frozenset(
    {
        "num_workers",
        "prefetch_batches",
        "log_every",
        "validate_every",
        "valid_segment_seconds",
        "valid_max_examples",
        "valid_batch_size",
        "checkpoint_every",
        "keep_last",
        "best_metric",
        "final_weights",
        "device",
        "compile",
        "deterministic",
        "max_bad_steps",
    }
)


class RunFingerprint(NamedTuple):
    parts: dict[str, str]  # part name -> hex digest

    @property
    def digest(self) -> str:
        return _sha256(repr(sorted(self.parts.items())))

    def changed(self, recorded: Mapping[str, str] | None) -> list[str]:
        """Names of the parts that differ from a checkpoint's ``recorded`` parts (all of them if it has none)."""
        if not recorded:
            return list(self.parts)
        return [name for name, value in self.parts.items() if recorded.get(name) != value]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_fingerprint(
    train_cfg: Any, loss_cfg: Any, seed: int, init: str | Path, shards: str | Path, code_root: str | Path = CODE_ROOT
) -> RunFingerprint:
    """The fingerprint of a run of ``train_cfg`` / ``loss_cfg`` (dataclasses) from ``init`` on ``shards``."""
    train = {k: v for k, v in to_dict(train_cfg).items() if k not in OPERATIONAL_KEYS}
    manifest = Path(shards) / MANIFEST
    return RunFingerprint(
        {
            "train params": _sha256(repr(sorted(train.items()))),
            "loss params": _sha256(repr(sorted(to_dict(loss_cfg).items()))),
            "seed": _sha256(repr(seed)),
            "init weights": file_sha256(init),
            "shards": file_sha256(manifest) if manifest.is_file() else "none",
            "code": code_digest(code_root),
            "torch": _sha256(torch.__version__),
        }
    )
