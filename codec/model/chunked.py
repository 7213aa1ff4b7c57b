"""Chunked encode/decode of long signals with flat memory, equal to whole-signal processing.

The SEANet encoder and decoder are non-causal convolution stacks: a code frame depends on the
samples within the encoder's receptive field, an output sample on the codes within the
decoder's. Each chunk of ``chunk_frames`` frames is therefore processed together with
``context`` frames on either side (clipped at the signal's ends), and only its own frames are
kept. With a context that covers the receptive field the kept frames see exactly the inputs
the whole-signal pass gives them: codes are identical and audio agrees to float rounding.
A signal of at most one chunk is processed in a single call, bit-identical to
``Codec.decode(Codec.encode(x, n_q))``.

Chunk starts are multiples of ``hop_length``, hence of every partial stride product, so the
strided convolutions see the same sample phase as in the whole-signal pass.

The receptive field is what the encoder and decoder say it is: every layer reports its reach
(:meth:`codec.model.layer.StreamingLayer.reach`) and containers compose their layers'; this module knows no layer type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from codec.model.codec import Codec
from codec.model.layer import reach_of

# Audio per chunk of the CLI, the Python API and tokenize: it bounds memory; the codes do not depend on it.
DEFAULT_CHUNK_SECONDS = 20.0
# Used when the reach is unbounded or unknown (an LSTM, a module without the layer protocol):
# chunked output then only approximates the whole-signal output near chunk borders.
FALLBACK_CONTEXT_FRAMES = 50


class Runner(Protocol):
    """What the chunked functions run: a :class:`Codec`, or another runtime of one with its ``encode``/``decode`` on
    tensors and its torch ``encoder``/``decoder`` for the layout (:class:`codec.formats.onnx_runtime.OnnxCodec`)."""

    encoder: nn.Module
    decoder: nn.Module

    @property
    def hop_length(self) -> int: ...

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...


class Context(NamedTuple):
    """Frames of context each side of a chunk; ``exact``: they cover the receptive field."""

    encoder_frames: int
    decoder_frames: int
    exact: bool


def receptive_context(codec: Codec | Runner) -> Context:
    """Context frames for :func:`encode_waveform` and :func:`decode_codes` (one extra frame of margin).

    The span is counted on both sides, which is generous for centred padding and exact for causal.
    """
    encoder, decoder = reach_of(codec.encoder), reach_of(codec.decoder)  # spans in samples and in code frames
    exact = encoder is not None and decoder is not None
    enc = math.ceil(encoder.span / codec.hop_length) + 1 if encoder else FALLBACK_CONTEXT_FRAMES
    dec = math.ceil(decoder.span) + 1 if decoder else FALLBACK_CONTEXT_FRAMES
    return Context(enc, dec, exact)


def chunk_spans(num_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[(first, end), ...]`` frame ranges of at most ``chunk_frames`` covering ``num_frames``."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    return [(start, min(start + chunk_frames, num_frames)) for start in range(0, num_frames, chunk_frames)]


def encode_waveform(
    codec: Codec | Runner, x: np.ndarray | torch.Tensor, n_q: int, chunk_frames: int, context: int | None = None
) -> torch.Tensor:
    """Mono waveform ``[T]`` at ``codec.sample_rate`` -> codes ``[n_q, ceil(T / hop)]`` int64, chunk by chunk.

    ``context``: frames each side (default :func:`receptive_context`). Peak memory is that of one
    chunk plus its context, whatever ``T``.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 1 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty mono waveform [T], got shape {tuple(x.shape)}")
    return encode_stream(codec, [x], n_q, chunk_frames, context)[0]


def encode_stream(
    codec: Codec | Runner,
    pieces: Iterable[np.ndarray | torch.Tensor],
    n_q: int,
    chunk_frames: int,
    context: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Like :func:`encode_waveform`, over a waveform arriving as consecutive ``pieces`` of any size.

    Returns ``(codes [n_q, F], num_samples)``. Chunk ``[first, end)`` is encoded over frames
    ``[first - context, end + context)`` (clipped to the signal), as soon as the samples after that
    window have arrived; the last window ends at the last sample and ``Codec.encode`` pads it as it
    pads a whole signal. So the codes do not depend on how the waveform was cut into pieces, and only
    one chunk plus its contexts and one piece are held in memory.
    """
    hop = codec.hop_length
    context = receptive_context(codec).encoder_frames if context is None else context
    buffer = torch.zeros(0)
    offset = 0  # index in the whole waveform of buffer[0]
    first, codes = 0, []

    def encode_chunk(end: int, hi: int) -> None:
        nonlocal first
        lo = max(0, first - context)
        window = buffer[lo * hop - offset : hi * hop - offset]
        codes.append(codec.encode(window[None, None], n_q)[0, :, first - lo : end - lo])
        first = end

    for piece in pieces:
        buffer = torch.cat([buffer, torch.as_tensor(piece, dtype=torch.float32).reshape(-1)])
        # More samples after the chunk's right context: the window is whole, and not the last one.
        while offset + buffer.shape[0] > (first + chunk_frames + context) * hop:
            encode_chunk(first + chunk_frames, first + chunk_frames + context)
            drop = max(0, first - context) * hop - offset
            buffer, offset = buffer[drop:], offset + drop
    total = offset + buffer.shape[0]
    if total == 0:
        raise ValueError("expected a non-empty mono waveform, got no samples")
    num_frames = -(-total // hop)
    while first < num_frames:
        end = min(first + chunk_frames, num_frames)
        encode_chunk(end, min(num_frames, end + context))
    return torch.cat(codes, dim=1), total


def decode_codes(
    codec: Codec | Runner,
    codes: np.ndarray | torch.Tensor,
    num_samples: int,
    chunk_frames: int,
    context: int | None = None,
) -> Iterator[np.ndarray]:
    """Codes ``[n_q, F]`` -> consecutive float32 pieces of the waveform, ``num_samples`` in all.

    ``num_samples`` must lie in ``((F - 1) * hop, F * hop]`` (the encoded signal's length).
    """
    codes = torch.as_tensor(codes, dtype=torch.int64)
    hop = codec.hop_length
    num_frames = codes.shape[-1]
    if codes.dim() != 2 or not (num_frames - 1) * hop < num_samples <= num_frames * hop:
        raise ValueError(f"codes of shape {tuple(codes.shape)} do not hold {num_samples} samples")
    context = receptive_context(codec).decoder_frames if context is None else context
    for first, end in chunk_spans(num_frames, chunk_frames):
        lo, hi = max(0, first - context), min(num_frames, end + context)
        y = codec.decode(codes[None, :, lo:hi])[0, 0]
        keep_end = min(end * hop, num_samples) - lo * hop
        yield y[(first - lo) * hop : keep_end].numpy()
