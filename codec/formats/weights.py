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

from codec.model.codec import Codec, codec_from_config
from codec.runtime.io import write_bytes_atomic

CONFIG_KEY = "config"


class WeightsError(ValueError):
    """A codec weights file is missing, unreadable, lacks its config or does not fit the model."""


def save_codec_weights(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    extra_metadata: dict[str, str] | None = None,
) -> Path:
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
    header = json.loads(data[8 : 8 + length])
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" not in entry:  # __metadata__
            header["__metadata__"] = dict(sorted(entry.items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > length:
        raise ValueError("safetensors header grew when sorted")  # cannot happen: same keys and values
    return data[:8] + text.ljust(length, b" ") + data[8 + length :]


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
        raise WeightsError(
            f"{path}: no '{CONFIG_KEY}' entry in the safetensors metadata (expected the codec config as JSON)"
        )
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
        return codec_fitting(config, tensors, seed=seed)
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: weights do not fit the codec config in its metadata: {exc}") from None


def codec_fitting(config: dict[str, Any], tensors: dict[str, torch.Tensor], *, seed: int = 0) -> Codec:
    """The codec of ``config`` with ``tensors`` loaded, built only once its state is known to match them.

    The config comes from the file, so it may ask for anything (a crafted export: 2,000 channels, a
    billion layers). It is first built on the ``meta`` device (shapes, no memory) after a cap on the
    counts that multiply modules, and every name and shape must equal the file's tensors; the real model,
    never larger than the file, is built only then. Raises ValueError saying what does not fit.
    """
    counts = {
        "quantizer.num_levels": config.get("quantizer", {}).get("num_levels"),
        "model.lstm_layers": config.get("model", {}).get("lstm_layers"),
        "model.vocos.num_layers": config.get("model", {}).get("vocos", {}).get("num_layers"),
        "model.ratios": len(config.get("model", {}).get("ratios") or ()),
    }
    for key, value in counts.items():
        # Each level, layer or stage owns at least one tensor: more of them than tensors cannot fit.
        if isinstance(value, int) and value > len(tensors):
            raise ValueError(f"{key} = {value} asks for more modules than the file's {len(tensors)} tensors")
    with torch.device("meta"):
        skeleton = codec_from_config(config, seed=seed)
    want = {name: tuple(v.shape) for name, v in skeleton.state_dict().items()}
    got = {name: tuple(v.shape) for name, v in tensors.items()}
    if want != got:
        missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        shapes = [
            f"{k}: config {want[k]}, file {got[k]}" for k in sorted(want.keys() & got.keys()) if want[k] != got[k]
        ]
        raise ValueError(
            "; ".join(
                part
                for part in (
                    f"missing tensors {missing[:3]}{'...' if len(missing) > 3 else ''}" if missing else "",
                    f"unexpected tensors {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}" if unexpected else "",
                    f"other shapes ({len(shapes)}): {'; '.join(shapes[:3])}" if shapes else "",
                )
                if part
            )
        )
    codec = codec_from_config(config, seed=seed)
    codec.load_state_dict(tensors, strict=True)
    return codec
