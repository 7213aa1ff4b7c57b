"""Training checkpoints: plain tensors/dicts/lists/numbers written atomically with ``torch.save``.

A checkpoint is a dict loaded with ``torch.load(..., weights_only=True)`` (no arbitrary pickles).
It carries a format marker, a version and a SHA-256 digest of its own content, so a truncated,
tampered or foreign file is refused with a :class:`CheckpointError` naming the file and the reason.
Files are ``step-00001234.pt`` (the state *after* that many steps) and ``best.pt`` in one folder.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import re
import sys
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from codec.runtime.io import write_bytes_atomic

FORMAT = "telucodec-train-checkpoint"
VERSION = 1
BEST_NAME = "best.pt"
STALE_DIR = "stale"  # checkpoints of an earlier, different run are moved here (one generation kept)
UNUSABLE_DIR = "unusable"  # what cannot be loaded is moved here, never deleted
_STEP_RE = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (unreadable, truncated, tampered, foreign or incompatible)."""


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def _named_like_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every entry of ``folder`` named ``step-*.pt``, files or not, oldest first."""
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name)))


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-*.pt`` file in ``folder``, oldest first (empty if no folder)."""
    return [(step, path) for step, path in _named_like_checkpoints(Path(folder)) if path.is_file()]


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def latest_usable_checkpoint(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint of ``folder`` that loads, and its state (None if there is none).

    Whatever stands in its way, newest first, is moved to ``folder/unusable/`` with a warning on stderr that
    names it and says why: a file that fails to load (truncated, damaged, tampered, foreign) or a folder
    named like a checkpoint (a ``best.pt`` folder too: the next save would fail on it). The run then resumes
    from the newest good one instead of stopping.
    """
    folder = Path(folder)
    named = _named_like_checkpoints(folder)
    for path in [folder / BEST_NAME, *(p for _, p in named)]:
        if path.exists() and not path.is_file():
            _set_aside(path, "a folder named like a checkpoint")
    for _, path in reversed(named):
        if not path.is_file():
            continue
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            _set_aside(path, str(exc).removeprefix(f"{path}: "))
    return None


def _set_aside(path: Path, reason: str) -> Path:
    target_dir = path.parent / UNUSABLE_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 0
    while target.exists():  # keep what an earlier run set aside too
        n += 1
        target = target_dir / f"{path.name}.{n}"
    path.rename(target)
    print(
        f"warning: {path} is unusable ({reason}); moved to {target}, resuming from an older checkpoint if any",
        file=sys.stderr,
    )
    return target


def prune_checkpoints(folder: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints (``best.pt`` is kept); return the deleted."""
    stale = [path for _, path in list_checkpoints(folder)[:-keep_last]] if keep_last > 0 else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def move_aside(folder: str | Path) -> list[Path]:
    """Move every checkpoint of ``folder`` (step files and ``best.pt``) into ``folder/stale/``,
    replacing what an earlier move left there; return the new paths."""
    folder = Path(folder)
    stale = folder / STALE_DIR
    files = [p for _, p in list_checkpoints(folder)] + [p for p in [folder / BEST_NAME] if p.is_file()]
    if not files:
        return []
    if stale.is_dir():
        for old in stale.iterdir():
            old.unlink()
    stale.mkdir(exist_ok=True)
    moved = []
    for p in files:
        moved.append(p.rename(stale / p.name))
    return moved


def state_digest(obj: Any) -> str:
    """SHA-256 hex digest of a nest of dicts/lists/tuples/tensors/scalars, independent of dict order."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: hashlib._Hash, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        h.update(f"S{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"checkpoint values must be tensors, containers or scalars, got {type(obj).__name__}")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plain values only) atomically to ``path``, with format marker and digest."""
    payload = {"format": FORMAT, "version": VERSION, "state": state, "digest": state_digest(state)}
    # Into memory first: torch.save names the zip's root folder after the file it writes, and the
    # temporary file's random name would make two identical checkpoints differ byte for byte.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` and return its ``state``.

    Raises :class:`CheckpointError` (never a pickle traceback) when the file is missing,
    truncated, not a zip written by ``torch.save``, holds objects other than plain values,
    is not a TeluCodec checkpoint, has another version, or fails its digest check.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols before refusing them
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc).lower():
            reason = "it holds objects other than plain tensors and containers (foreign or unsafe pickle)"
        else:
            reason = f"truncated or corrupt ({type(exc).__name__}: {first})"
        raise CheckpointError(f"{path}: cannot load this checkpoint: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a TeluCodec training checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, this code reads {VERSION}")
    state = payload.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint has no state dict")
    try:
        digest = state_digest(state)
    except TypeError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if digest != payload.get("digest"):
        raise CheckpointError(f"{path}: content does not match its digest (the file was modified or damaged)")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python RNG states as plain values."""
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # the legacy tuple form
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only when CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
