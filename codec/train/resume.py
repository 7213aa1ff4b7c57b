"""Where a training run starts: the whole resume policy, in one function.

The stage is re-run by DVC, Snakemake, SLURM or a user after a crash, a kill, a forced rerun, a fixed typo
in params.yaml, or a change of code, data or parameters; the checkpoint folder persists across all of them.
:func:`resume_point` decides from the checkpoints alone (never from whether logs or outputs exist), by the
fingerprint each checkpoint carries (:mod:`codec.train.fingerprint`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from codec.train import checkpoint as ckpt
from codec.train.fingerprint import RunFingerprint


class ResumePoint(NamedTuple):
    path: Path  # the checkpoint resumed from
    state: dict[str, Any]  # its content (see codec.train.run_state.checkpoint_state)


def resume_point(folder: str | Path, fingerprint: RunFingerprint) -> ResumePoint | None:
    """The checkpoint of this very run to resume from, or None to start afresh. The cases:

    1. No checkpoint in ``folder``: start afresh.
    2. Unloadable checkpoints (truncated, damaged, tampered, foreign, or a folder named like one), newest
       first, are moved to ``folder/unusable/`` with a warning on stderr naming each and why; the newest
       loadable one is considered instead (:func:`codec.train.checkpoint.latest_usable_checkpoint`).
    3. Its fingerprint is this run's: resume from it. Also when the run had finished (its step is the
       last): then nothing is trained, the logs are replayed and the weights written again, so a stage
       whose outputs were deleted (``dvc repro -f``, a mistyped parameter) comes back byte for byte.
    4. Its fingerprint differs (other parameters that change the weights, seed, init weights, data, code
       or torch): every checkpoint is moved to ``folder/stale/`` (one generation kept) with a note on
       stderr naming the parts that differ; start afresh. Never reused.
    5. It was written by an older version (no fingerprint parts, or no log history to replay): as 4, and
       the note says so.
    """
    folder = Path(folder)
    found = ckpt.latest_usable_checkpoint(folder)
    if found is None:
        return None
    path, state = found
    if state.get("fingerprint") == fingerprint.digest and "log_history" in state:
        return ResumePoint(path, state)
    recorded = state.get("fingerprint_parts")
    changed = fingerprint.changed(recorded if isinstance(recorded, dict) else None)
    if isinstance(recorded, dict) and changed:
        why = f"it was written with other {' and '.join(changed)} than this run's"
    else:
        why = "it was written by an older version (no fingerprint parts or log history)"
    moved = ckpt.move_aside(folder)
    print(
        f"note: train: not resuming from {path}: {why}; starting afresh "
        f"(moved {len(moved)} checkpoint file(s) to {folder / ckpt.STALE_DIR})",
        file=sys.stderr,
    )
    return None
