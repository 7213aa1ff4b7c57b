"""Chunked encode/decode equals the whole-signal codec; the context covers the receptive field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.model.chunked import chunk_spans, decode_codes, encode_stream, encode_waveform, receptive_context

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def signal(tiny_codec):
    torch.manual_seed(3)
    return (0.3 * torch.randn(2 * tiny_codec.sample_rate - 123)).clamp(-1, 1)  # not a hop multiple


def test_single_chunk_is_bit_identical_to_the_codec(tiny_codec, signal):
    whole = tiny_codec.encode(signal[None, None], 3)[0]
    codes = encode_waveform(tiny_codec, signal, 3, chunk_frames=1000)
    assert torch.equal(codes, whole)
    reference = tiny_codec.decode(whole[None])[0, 0, : signal.shape[0]].numpy()
    (decoded,) = decode_codes(tiny_codec, codes, signal.shape[0], chunk_frames=1000)
    assert np.array_equal(decoded, reference)


@pytest.mark.parametrize("chunk_frames", [1, 7, 40])
def test_chunked_equals_whole_signal(tiny_codec, signal, chunk_frames):
    whole = tiny_codec.encode(signal[None, None], 4)[0]
    assert torch.equal(encode_waveform(tiny_codec, signal, 4, chunk_frames), whole)
    reference = tiny_codec.decode(whole[None])[0, 0, : signal.shape[0]].numpy()
    pieces = list(decode_codes(tiny_codec, whole, signal.shape[0], chunk_frames))
    assert len(pieces) == len(chunk_spans(whole.shape[1], chunk_frames)) > 1
    np.testing.assert_allclose(np.concatenate(pieces), reference, rtol=0, atol=1e-5)


def test_without_context_chunk_borders_differ(tiny_codec, signal):
    # The check above can fail: with no context the borders see padding instead of the signal.
    whole = tiny_codec.encode(signal[None, None], 4)[0]
    reference = tiny_codec.decode(whole[None])[0, 0, : signal.shape[0]].numpy()
    decoded = np.concatenate(list(decode_codes(tiny_codec, whole, signal.shape[0], 7, context=0)))
    assert np.abs(decoded - reference).max() > 1e-3


def _support(output: torch.Tensor, inputs: torch.Tensor) -> np.ndarray:
    """Indices along the last axis of ``inputs`` that ``output`` depends on (non-zero gradient)."""
    (grad,) = torch.autograd.grad(output, inputs)
    return np.flatnonzero(grad.abs().sum(dim=tuple(range(grad.dim() - 1))).numpy())


def test_context_covers_the_measured_receptive_field(tiny_codec):
    context = receptive_context(tiny_codec)
    assert context.exact
    hop, frames, frame = tiny_codec.hop_length, 64, 32
    x = (0.3 * torch.randn(1, 1, frames * hop)).requires_grad_()
    support = _support(tiny_codec.encoder(x)[0, :, frame].sum(), x)
    assert frame * hop - support.min() <= context.encoder_frames * hop
    assert support.max() - (frame + 1) * hop < context.encoder_frames * hop

    z = torch.randn(1, tiny_codec.encoder.dimension, frames, requires_grad=True)
    y = tiny_codec.decoder.model(z)  # before the output tanh, whose gradient could vanish
    support = _support(y[0, 0, frame * hop : (frame + 1) * hop].sum(), z)
    assert frame - support.min() <= context.decoder_frames
    assert support.max() - frame <= context.decoder_frames


def test_bad_arguments():
    with pytest.raises(ValueError):
        chunk_spans(10, 0)
    assert chunk_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_encode_stream_equals_encode_waveform_for_any_piece_sizes(tiny_codec):
    rng = np.random.default_rng(3)
    hop = tiny_codec.hop_length
    for length in (7, hop, 3 * hop + 5, 40 * hop + 17):
        x = (0.3 * rng.standard_normal(length)).astype(np.float32)
        whole = encode_waveform(tiny_codec, x, 2, chunk_frames=4)
        cuts = np.sort(rng.choice(np.arange(1, length), size=min(5, length - 1), replace=False))
        streamed, num_samples = encode_stream(tiny_codec, np.split(x, cuts), 2, chunk_frames=4)
        assert num_samples == length and torch.equal(streamed, whole)
    with pytest.raises(ValueError, match="no samples"):
        encode_stream(tiny_codec, iter([]), 2, chunk_frames=4)
