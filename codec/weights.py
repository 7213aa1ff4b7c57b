"""Codec weights as one safetensors file: the model's state_dict plus its config in the metadata.

Format (written by the ``seed_codebooks`` and ``train`` stages, read by ``train``, evaluate, export):

* tensors: exactly ``Codec.state_dict()`` (parameter and buffer names as the module names them,
  e.g. ``quantizer.codebooks.0.embedding_sum``);
* metadata ``"config"``: JSON of ``Codec.config``, i.e. ``{"model": ModelConfig, "quantizer":
  QuantizerConfig, "sample_rate": int}`` as plain dicts, enough for ``codec_from_config``;
* any other metadata keys (strings) are informative (``step``, ``stage``...) and ignored here.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from codec.io import write_bytes_atomic
from codec.model import Codec, codec_from_config

CONFIG_KEY = "config"


class WeightsError(ValueError):
    """A codec weights file is missing, unreadable, lacks its config or does not fit the model."""


def save_codec_weights(path: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any],
                       extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``state_dict`` and ``config`` atomically to ``path`` (safetensors)."""
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in state_dict.items()}
    metadata = {**(extra_metadata or {}), CONFIG_KEY: json.dumps(config, sort_keys=True)}
    write_bytes_atomic(path, _sorted_header(save(tensors, metadata=metadata)))
    return Path(path)


def _sorted_header(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header's keys sorted.

    The writer emits the header's keys (tensor entries and metadata) in a per-process random order,
    so equal weights gave different bytes and DVC hashes from run to run. Tensor offsets are relative
    to the data block, so reordering the header moves nothing; the header keeps its padded length.
    """
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" not in entry:  # __metadata__
            header["__metadata__"] = dict(sorted(entry.items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > length:
        raise ValueError("safetensors header grew when sorted")  # cannot happen: same keys and values
    return data[:8] + text.ljust(length, b" ") + data[8 + length:]


def read_codec_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, str]]:
    """``(state_dict, config, metadata)`` of a weights file; :class:`WeightsError` when unusable."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such codec weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path}: no '{CONFIG_KEY}' entry in the safetensors metadata (expected the codec "
                           "config as JSON)")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: metadata '{CONFIG_KEY}' is not JSON ({exc})") from None
    return tensors, config, metadata


def load_codec(path: str | Path, *, seed: int = 0) -> Codec:
    """Rebuild the codec from its config and load the weights (strict: every tensor must match).

    ``seed`` seeds the quantizer-dropout draws of a codec about to be trained (see ``build_codec``).
    """
    tensors, config, _ = read_codec_weights(path)
    try:
        codec = codec_from_config(config, seed=seed)
        codec.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: weights do not fit the codec config in its metadata: {exc}") from None
    return codec
