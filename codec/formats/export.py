"""The portable codec: one safetensors file that the ``telucodec`` CLI loads without pickle.

Contents (written by :func:`export_codec`, read by :func:`load_export`):

* tensors: ``Codec.state_dict()`` exactly as in a training weights file (``codec/formats/weights.py``),
  plus ``entropy.probabilities`` ``[num_levels, codebook_size]`` float64: per-level code
  distributions for the range coder, from the quantizer's EMA ``cluster_usage`` mixed with a
  little uniform mass so that no code has zero probability, and capped at
  :data:`codec.formats.bitstream.MAX_SYMBOL_PROBABILITY`;
* metadata: ``config`` (JSON of ``Codec.config``), ``format`` = ``telucodec-export``,
  ``format_version``, ``model_id`` (hex sha256 of the canonical tensors and config, see
  :func:`content_hash`; its first 16 bytes identify the model in every bitstream) and
  informative fields (rates, levels, codebook size, uniform mix, ``causal``: whether the model streams).

The model id is a hash of content, not of file bytes: the same weights exported twice get the
same id, any changed tensor value, dtype, shape, name or config entry gets another.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from codec.config.export import ExportConfig
from codec.formats.bitstream import MAX_SYMBOL_PROBABILITY, MODEL_ID_BYTES, BitstreamError, check_distributions
from codec.formats.weights import WeightsError, codec_fitting, load_codec, read_codec_weights, save_codec_weights
from codec.model.codec import Codec
from codec.quantization.codebook import EuclideanCodebook

EXPORT_FORMAT = "telucodec-export"
EXPORT_VERSION = 1
PROBABILITIES_KEY = "entropy.probabilities"


class ExportError(ValueError):
    """An export file is missing, not an export, of another version, modified, or unusable."""


@dataclass(frozen=True)
class ExportedCodec:
    """A loaded export: the codec (eval mode), its id and its per-level code distributions."""

    codec: Codec
    model_id: str  # hex sha256 (64 characters)
    probabilities: np.ndarray  # [num_levels, codebook_size] float64, rows sum to 1
    metadata: dict[str, str] = field(repr=False)
    path: Path | None = field(default=None, compare=False)  # the file it was loaded from

    @property
    def model_id_bytes(self) -> bytes:
        """The bitstream's 16-byte model id."""
        return bytes.fromhex(self.model_id)[:MODEL_ID_BYTES]


@dataclass(frozen=True)
class ExportInfo:
    """What :func:`export_codec` wrote. ``entropy_bits``: expected bits per code of each level
    under its own distribution (what the range coder spends when the data follow the EMA usage)."""

    path: Path
    model_id: str
    num_parameters: int
    file_bytes: int
    nominal_kbps: float  # all levels, raw codes
    expected_kbps: float  # all levels, entropy-coded at the expected bits per code
    entropy_bits: list[float]

    def metrics(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "num_parameters": self.num_parameters,
            "file_bytes": self.file_bytes,
            "nominal_kbps": self.nominal_kbps,
            "expected_kbps": self.expected_kbps,
            "entropy_bits_per_level": self.entropy_bits,
        }


def code_distributions(usage: torch.Tensor, uniform_mix: float) -> torch.Tensor:
    """EMA usage ``[L, K]`` -> probabilities ``[L, K]`` float64: every entry > 0, none above the cap.

    ``p = (1 - uniform_mix) * usage / sum(usage) + uniform_mix / K``; a level whose largest
    probability still exceeds :data:`MAX_SYMBOL_PROBABILITY` gets just enough more uniform mass
    to meet it (the cap bounds what a decoder may be asked to expand).
    """
    usage = usage.detach().to(torch.float64).cpu().clamp_min(0.0)
    if usage.dim() != 2 or usage.shape[1] < 3:
        raise ValueError(f"expected usage [L, K >= 3], got {tuple(usage.shape)}")
    k = usage.shape[1]
    totals = usage.sum(dim=1, keepdim=True)
    # A level with no usage information (all zero or non-finite) is coded as uniform.
    valid = torch.isfinite(totals) & (totals > 0)
    empirical = torch.where(valid, usage / torch.where(valid, totals, 1.0), torch.full_like(usage, 1.0 / k))
    p = (1.0 - uniform_mix) * empirical + uniform_mix / k
    peak = p.max(dim=1, keepdim=True).values
    extra = ((peak - MAX_SYMBOL_PROBABILITY) / (peak - 1.0 / k)).clamp(0.0, 1.0)
    p = (1.0 - extra) * p + extra / k
    return p / p.sum(dim=1, keepdim=True)


def content_hash(tensors: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
    """Hex sha256 of the config (canonical JSON) and every tensor (name, dtype, shape, bytes) by name.

    Each field is length-prefixed, so no two different contents hash the same byte sequence.
    Tensor bytes are the native (little-endian on every platform torch ships for) element bytes.
    """
    digest = hashlib.sha256()

    def put(data: bytes) -> None:
        digest.update(struct.pack("<Q", len(data)))
        digest.update(data)

    put(f"{EXPORT_FORMAT}/{EXPORT_VERSION}".encode())
    put(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        put(name.encode())
        put(str(t.dtype).encode())
        put(json.dumps(list(t.shape)).encode())
        put(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_codec(
    codec: Codec, path: str | Path, config: ExportConfig, extra_metadata: dict[str, str] | None = None
) -> ExportInfo:
    """Write ``codec`` (weights, config, code distributions, model id) atomically to ``path``."""
    if codec.config is None:
        raise ExportError("the codec has no config (build it with build_codec or codec_from_config)")
    storage = {"float32": torch.float32, "float16": torch.float16}[config.dtype]
    state = {
        name: t.detach().cpu().to(storage if t.is_floating_point() else t.dtype).contiguous().clone()
        for name, t in codec.state_dict().items()
    }
    if PROBABILITIES_KEY in state:
        raise ExportError(f"the codec already has a tensor named {PROBABILITIES_KEY!r}")
    # Every level is a EuclideanCodebook (or its FactorisedCodebook subclass); a ModuleList yields plain Modules.
    usage = torch.stack([cast(EuclideanCodebook, cb).cluster_usage for cb in codec.quantizer.codebooks]).float()
    probabilities = code_distributions(usage, config.uniform_mix)
    tensors = {**state, PROBABILITIES_KEY: probabilities}
    model_id = content_hash(tensors, codec.config)
    metadata = {
        **(extra_metadata or {}),
        "format": EXPORT_FORMAT,
        "format_version": str(EXPORT_VERSION),
        "model_id": model_id,
        "sample_rate": str(codec.sample_rate),
        "hop_length": str(codec.hop_length),
        "num_levels": str(codec.num_levels),
        "codebook_size": str(int(codec.quantizer.codebook_size)),
        "uniform_mix": repr(config.uniform_mix),
        # Whether `telucodec stream-encode` / `stream-decode` can run it (also in the config's model section).
        "causal": str(bool((codec.config or {}).get("model", {}).get("causal", False))).lower(),
    }
    path = save_codec_weights(path, tensors, codec.config, metadata)
    entropy_bits = (-(probabilities * probabilities.log2()).sum(dim=1)).tolist()
    return ExportInfo(
        path=path,
        model_id=model_id,
        num_parameters=sum(p.numel() for p in codec.parameters()),
        file_bytes=path.stat().st_size,
        nominal_kbps=codec.bitrate_kbps(),
        expected_kbps=sum(entropy_bits) * codec.frame_rate / 1000.0,
        entropy_bits=entropy_bits,
    )


def load_export(path: str | Path) -> ExportedCodec:
    """Load an export with safetensors only, verify its content hash and rebuild the codec (eval mode).

    Raises :class:`ExportError` with the reason (missing, not an export, other version,
    hash mismatch, tensors that do not fit the config, bad distributions).
    """
    path = Path(path)
    try:
        tensors, config, metadata = read_codec_weights(path)
    except WeightsError as exc:
        raise ExportError(str(exc)) from None
    if metadata.get("format") != EXPORT_FORMAT:
        raise ExportError(
            f"{path}: not a TeluCodec export (no format={EXPORT_FORMAT!r} in its metadata); "
            "export trained weights with `python -m pipeline.export`"
        )
    if metadata.get("format_version") != str(EXPORT_VERSION):
        raise ExportError(
            f"{path}: export format version {metadata.get('format_version')!r}, this build reads {EXPORT_VERSION}"
        )
    model_id = metadata.get("model_id", "")
    if content_hash(tensors, config) != model_id:
        raise ExportError(
            f"{path}: content hash does not match the model_id in its metadata: the file was modified or is corrupted"
        )
    probabilities = tensors.pop(PROBABILITIES_KEY, None)
    if probabilities is None:
        raise ExportError(f"{path}: no {PROBABILITIES_KEY!r} tensor")
    try:
        codec = codec_fitting(config, tensors)  # checked against the tensors before anything is allocated
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise ExportError(f"{path}: weights do not fit the codec config in its metadata: {exc}") from None
    shape = (codec.num_levels, int(codec.quantizer.codebook_size))
    if tuple(probabilities.shape) != shape:
        raise ExportError(f"{path}: {PROBABILITIES_KEY} has shape {tuple(probabilities.shape)}, expected {shape}")
    try:
        checked = check_distributions(probabilities.numpy(), *shape)
    except BitstreamError as exc:
        raise ExportError(f"{path}: {PROBABILITIES_KEY}: {exc}") from None
    return ExportedCodec(codec.eval(), model_id, checked, metadata, path)


def load_any_codec(path: str | Path) -> Codec:
    """The codec in ``path``, an export (content hash checked, as :func:`load_export`) or a weights file of the
    train stage (:func:`codec.formats.weights.load_codec`): what every command that scores or inspects a model
    takes, so the shipped ``pretrained/*/*.safetensors`` work wherever trained weights do. Float32 parameters
    either way (an export stored as float16 is widened). Raises :class:`WeightsError` (an :class:`ExportError`
    is one) when neither."""
    _, _, metadata = read_codec_weights(path)
    if metadata.get("format") == EXPORT_FORMAT:
        try:
            return load_export(path).codec.float()
        except ExportError as exc:
            raise WeightsError(str(exc)) from None
    return load_codec(path)
