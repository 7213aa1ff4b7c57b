"""Streaming encode and decode of a causal codec: audio in, codes out (and back), chunk by chunk.

A causal model (``model.causal``) pads every convolution on the left only, so an output depends on the inputs
before it alone. :class:`StreamingEncoder` and :class:`StreamingDecoder` run the codec's own layers on each
chunk and carry between calls what the next chunk needs: the last ``kernel - stride`` inputs of every
convolution, the ``kernel - stride`` overlapping outputs of every transposed convolution, an LSTM's hidden and
cell states, and the Vocos head's overlap-add buffer. The chunks they are fed give exactly the windows the
offline pass computes, so the codes equal ``Codec.encode`` of the whole signal and the audio equals
``Codec.decode`` of all the codes, up to float rounding where a sum is split across calls (a transposed
convolution's overlap; ``tests/codec/model/test_streaming.py`` bounds it at 1e-5 of full scale, measured under
7e-7; the codes are identical).

Latency (:func:`algorithmic_latency`): a code frame needs its whole hop of audio (one frame, 20 ms at
50 frames/s); the SEANet decoder gives its frame's samples at once, the causal Vocos head after its
``lookahead_frames`` more frames.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from codec.model.codec import Codec
from codec.model.layer import NotCausal, frozen, streaming_layer

__all__ = ["Latency", "NotCausal", "StreamingDecoder", "StreamingEncoder", "algorithmic_latency", "is_causal"]


def is_causal(codec: Codec) -> bool:
    return bool((codec.config or {}).get("model", {}).get("causal", False))


class Latency(NamedTuple):
    """Algorithmic latency in milliseconds: the frame the encoder waits for, and the decoder's look-ahead."""

    frame_ms: float
    lookahead_ms: float

    @property
    def total_ms(self) -> float:
        return self.frame_ms + self.lookahead_ms


def algorithmic_latency(codec: Codec) -> Latency:
    """From the architecture: one hop of audio per code frame, plus the decoder's look-ahead (its
    :meth:`~codec.model.layer.StreamingLayer.delay`: the causal Vocos head's ``lookahead_frames`` at the head's hop,
    a quarter of a code frame each with ``head_upsample`` 4; none for a SEANet decoder)."""
    frame_ms = 1000 * codec.hop_length / codec.sample_rate
    return Latency(frame_ms, 1000 * streaming_layer(codec.decoder).delay() / codec.sample_rate)


class StreamingEncoder:
    """Mono audio at the codec's rate, any number of samples at a time -> the code frames it completes.

    ``encode(samples)`` returns ``[n_q, F]`` int64 codes for every hop of audio received so far and not yet
    encoded (``F`` may be 0); ``flush()`` pads what is left to a whole hop with zeros, as ``Codec.encode`` pads a
    whole signal, and returns its frame. Samples are clipped to [-1, 1] like the offline pass.
    """

    def __init__(self, codec: Codec, n_q: int | None = None):
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.codec, self.n_q = codec, n_q or codec.num_levels
        # A copy with the weights computed once; it refuses (NotCausal) here if a layer cannot stream.
        self.encoder = streaming_layer(frozen(codec.encoder))
        self.state = self.encoder.init_state()
        self.pending = torch.zeros(0)
        self.num_samples = 0

    @torch.inference_mode()
    def encode(self, samples: Tensor) -> Tensor:
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.num_samples += samples.shape[0]
        self.pending = torch.cat([self.pending, samples.clamp(-1.0, 1.0)])
        ready = self.pending.shape[0] // self.codec.hop_length * self.codec.hop_length
        chunk, self.pending = self.pending[:ready], self.pending[ready:]
        return self._codes(chunk)

    @torch.inference_mode()
    def flush(self) -> Tensor:
        chunk = F.pad(self.pending, (0, (-self.pending.shape[0]) % self.codec.hop_length))
        self.pending = torch.zeros(0)
        return self._codes(chunk)

    def _codes(self, chunk: Tensor) -> Tensor:
        if chunk.shape[0] == 0:
            return torch.zeros(self.n_q, 0, dtype=torch.int64)
        latents, self.state = self.encoder.step(chunk.view(1, 1, -1), self.state)
        return self.codec.quantizer.encode(latents, self.n_q)[0]


class StreamingDecoder:
    """Code frames ``[n_q, F]``, any number at a time -> the audio samples they complete (float32 ``[T]``).

    A causal SEANet decoder completes each frame's hop at once; a causal Vocos decoder completes a frame's hop
    ``lookahead_frames`` frames later, and ``flush()`` gives the last ones (faded out, as offline): the decoder's
    step gives its samples :meth:`~codec.model.layer.StreamingLayer.delay` samples late, the first ones (before the
    signal's start) dropped here.
    """

    def __init__(self, codec: Codec):
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.codec = codec
        self.decoder = streaming_layer(frozen(codec.decoder))
        self.state = self.decoder.init_state()
        self.to_drop = self.decoder.delay()  # samples still to drop: those before the signal's start
        self.frames_in = 0

    @torch.inference_mode()
    def decode(self, codes: Tensor) -> Tensor:
        codes = torch.as_tensor(codes, dtype=torch.int64)
        if codes.dim() != 2 or codes.shape[-1] == 0:
            return torch.zeros(0)
        self.frames_in += codes.shape[-1]
        y, self.state = self.decoder.step(self.codec.quantizer.decode(codes[None]), self.state)
        return self._drop(y[0, 0])

    @torch.inference_mode()
    def flush(self) -> Tensor:
        return self._drop(self.decoder.flush(self.state)[0, 0])

    def _drop(self, samples: Tensor) -> Tensor:
        drop = min(self.to_drop, samples.shape[0])
        self.to_drop -= drop
        return samples[drop:]
