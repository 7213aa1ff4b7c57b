"""The codec from Python: load a trained TeluCodec, turn audio into codes and codes into audio.

    >>> from codec.api import TeluCodec
    >>> tc = TeluCodec.load()                               # the shipped pretrained Telugu codec
    >>> codes = tc.encode(audio, sample_rate=44100, kbps=3)  # int64 [levels, frames], 6 of 12 levels
    >>> speech = tc.decode(codes)                           # float32 [samples] at tc.sample_rate (16 kHz)

``audio`` is a NumPy array or a tensor, ``[samples]`` or ``[samples, channels]``, at any rate: it is downmixed,
resampled (soxr, streaming, as ``telucodec encode`` reads a file) and clipped to [-1, 1], then encoded chunk by
chunk (:mod:`codec.model.chunked`), so the codes equal ``telucodec encode``'s for the same audio and the
``tokenize`` stage's for the same segment. A list of arrays (any lengths) gives a list of code arrays, each what
encoding it alone gives. :meth:`TeluCodec.load` takes a shipped model's name (a folder of ``pretrained/``:
``telucodec-te``, ``telucodec-te-stream``) or the path of any export (``pipeline.export``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, overload

import numpy as np
import torch

from codec.data.audio import AudioRejected, array_blocks, mono_pieces
from codec.formats.export import ExportedCodec, load_export
from codec.model.chunked import DEFAULT_CHUNK_SECONDS, decode_codes, encode_stream
from codec.model.streaming import StreamingDecoder, StreamingEncoder, algorithmic_latency, is_causal

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT_MODEL = "telucodec-te"
RESAMPLE_QUALITY: Final = "HQ"  # soxr preset, as the data stage's default

Audio = np.ndarray | torch.Tensor


def levels_for(num_levels: int, kbps_per_level: float, kbps: float | None, levels: int | None) -> int:
    """Levels to send: ``levels``, else the most whose nominal bitrate fits ``kbps``, else all of them.
    :class:`ValueError` when neither fits the model."""
    if levels is not None:
        if not 1 <= levels <= num_levels:
            raise ValueError(f"levels must be in [1, {num_levels}], got {levels}")
        return levels
    if kbps is None:
        return num_levels
    if not math.isfinite(kbps) or kbps < kbps_per_level * (1 - 1e-9):
        raise ValueError(
            f"{kbps:g} kbit/s is not a usable bitrate: the lowest bitrate of this model is {kbps_per_level:g} kbit/s "
            "(1 level)"
        )
    return min(num_levels, math.floor(kbps / kbps_per_level + 1e-9))


def model_path(name_or_path: str | Path) -> Path:
    """A shipped model's file from its name (``pretrained/<name>/<name>.safetensors``), or the path given."""
    path = Path(name_or_path)
    if path.suffix != ".safetensors" and (PRETRAINED / str(name_or_path)).is_dir():
        return PRETRAINED / str(name_or_path) / f"{name_or_path}.safetensors"
    return path


class TeluCodec:
    """A loaded export (:func:`codec.formats.export.load_export`): encode, decode, and what the model is."""

    def __init__(self, exported: ExportedCodec, device: str | torch.device = "cpu"):
        self.exported = exported
        self.device = torch.device(device)
        self.model = exported.codec.to(self.device).eval()

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> TeluCodec:
        """A shipped model by name (``telucodec-te``, the default; ``telucodec-te-stream``, causal) or any export
        by path; :class:`codec.formats.export.ExportError` when it is missing or not an export."""
        return cls(load_export(model_path(name_or_path)), device)

    # ----------------------------------------------------------------------------------- what it is

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def frame_rate(self) -> float:
        """Code frames per second (50 for the shipped codecs)."""
        return float(self.model.frame_rate)

    @property
    def hop_length(self) -> int:
        return int(self.model.hop_length)

    @property
    def num_levels(self) -> int:
        return int(self.model.num_levels)

    @property
    def codebook_size(self) -> int:
        return int(self.model.quantizer.codebook_size)

    @property
    def model_id(self) -> str:
        return self.exported.model_id

    @property
    def causal(self) -> bool:
        """Whether it streams (``stream_encoder``/``stream_decoder``)."""
        return is_causal(self.model)

    @property
    def latency_ms(self) -> float | None:
        """Algorithmic latency of a causal model (a frame plus the decoder's look-ahead); None otherwise."""
        return algorithmic_latency(self.model).total_ms if self.causal else None

    def bitrate_kbps(self, levels: int | None = None) -> float:
        """Nominal bitrate of ``levels`` levels (default all): ``levels x log2(codebook size) x frame rate``."""
        return float(self.model.bitrate_kbps(self.num_levels if levels is None else levels))

    def levels(self, kbps: float | None = None, levels: int | None = None) -> int:
        """The levels :meth:`encode` sends for ``kbps`` or ``levels`` (the most that fit ``kbps``; default all)."""
        return levels_for(self.num_levels, self.bitrate_kbps(1), kbps, levels)

    # ------------------------------------------------------------------------------ encode, decode

    @overload
    def encode(
        self, audio: Audio, sample_rate: int | None = ..., *, kbps: float | None = ..., levels: int | None = ...
    ) -> np.ndarray: ...

    @overload
    def encode(
        self,
        audio: Sequence[Audio],
        sample_rate: int | None = ...,
        *,
        kbps: float | None = ...,
        levels: int | None = ...,
    ) -> list[np.ndarray]: ...

    def encode(
        self,
        audio: Audio | Sequence[Audio],
        sample_rate: int | None = None,
        *,
        kbps: float | None = None,
        levels: int | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Audio ``[samples]`` or ``[samples, channels]`` at ``sample_rate`` (default: the codec's) -> codes
        ``[levels, ceil(samples at the codec's rate / hop)]`` int64; a list of signals -> a list of codes."""
        if isinstance(audio, (list, tuple)):
            return [self._encode_one(a, sample_rate, kbps, levels) for a in audio]
        return self._encode_one(audio, sample_rate, kbps, levels)

    def _encode_one(self, audio: Any, rate: int | None, kbps: float | None, levels: int | None) -> np.ndarray:
        samples = _as_array(audio)
        if samples.ndim not in (1, 2) or samples.shape[0] == 0 or (samples.ndim == 2 and samples.shape[1] == 0):
            raise ValueError(f"expected audio [samples] or [samples, channels], got shape {samples.shape}")
        rate = self.sample_rate if rate is None else int(rate)
        if rate < 1:
            raise ValueError(f"sample_rate must be positive, got {rate}")
        n_q = self.levels(kbps, levels)
        pieces = mono_pieces(
            array_blocks(samples, rate, DEFAULT_CHUNK_SECONDS), rate, self.sample_rate, RESAMPLE_QUALITY
        )
        chunk_frames = max(1, round(DEFAULT_CHUNK_SECONDS * self.frame_rate))
        with torch.inference_mode(), _refused_as_value_error():
            codes, _ = encode_stream(
                self.model, (torch.from_numpy(p).to(self.device) for p in pieces), n_q, chunk_frames
            )
        return codes.cpu().numpy()

    def decode(self, codes: Audio, num_samples: int | None = None) -> np.ndarray:
        """Codes ``[levels, frames]`` (any integer type, the first levels of the model) -> float32 ``[samples]`` at
        :attr:`sample_rate`: ``frames x hop`` samples, or ``num_samples`` (the encoded signal's length at the codec's
        rate) when given."""
        array = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes)
        if array.ndim != 2 or array.shape[1] == 0 or not 1 <= array.shape[0] <= self.num_levels:
            raise ValueError(f"expected codes [levels <= {self.num_levels}, frames > 0], got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= self.codebook_size:
            raise ValueError(f"codes must be integers in [0, {self.codebook_size})")
        frames = array.shape[1]
        num_samples = frames * self.hop_length if num_samples is None else int(num_samples)
        tensor = torch.from_numpy(array.astype(np.int64)).to(self.device)
        chunk_frames = max(1, round(DEFAULT_CHUNK_SECONDS * self.frame_rate))
        with torch.inference_mode():
            pieces = list(decode_codes(self.model, tensor, num_samples, chunk_frames))
        return np.concatenate(pieces).astype(np.float32, copy=False)

    # ---------------------------------------------------------------------------------- streaming

    def stream_encoder(self, kbps: float | None = None, levels: int | None = None) -> StreamingEncoder:
        """Mono samples at :attr:`sample_rate`, any number at a time -> the code frames they complete (causal
        models; :class:`codec.model.streaming.NotCausal` otherwise)."""
        return StreamingEncoder(self.model, self.levels(kbps, levels))

    def stream_decoder(self) -> StreamingDecoder:
        """Code frames, any number at a time -> the samples they complete (causal models)."""
        return StreamingDecoder(self.model)

    def __repr__(self) -> str:
        kind = f"causal, {self.latency_ms:g} ms" if self.causal else "non-causal"
        return (
            f"TeluCodec({self.model_id[:16]}, {self.sample_rate} Hz, {self.num_levels} levels x {self.codebook_size} "
            f"at {self.frame_rate:g} frames/s = {self.bitrate_kbps():g} kbit/s, {kind})"
        )


def _as_array(audio: Any) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    array = np.asarray(audio)
    if np.issubdtype(array.dtype, np.signedinteger):  # PCM integers to [-1, 1), as libsndfile reads them
        return (array.astype(np.float64) / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"expected float or signed integer PCM audio, got {array.dtype}")
    return array.astype(np.float32, copy=False)


@contextlib.contextmanager
def _refused_as_value_error() -> Iterator[None]:
    try:
        yield
    except AudioRejected as exc:  # non-finite samples, found while streaming
        raise ValueError(str(exc)) from None
