"""Streaming encode/decode of causal models equals the offline pass, for any chunking; state is carried."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.config.model import ModelConfig, VocosConfig
from codec.config.quantizer import QuantizerConfig
from codec.model.codec import Codec, build_codec
from codec.model.streaming import NotCausal, StreamingDecoder, StreamingEncoder, algorithmic_latency
from tests.codec.conftest import speechlike

pytestmark = pytest.mark.usefixtures("single_thread")
HOP = 320
BOUND = 1e-5  # of full scale: where a transposed convolution's overlap is summed across two calls

DECODERS = {
    "seanet": dict(decoder="seanet"),
    "seanet-lstm": dict(decoder="seanet", lstm_layers=1),
    "vocos-lookahead-0": dict(
        decoder="vocos", vocos=VocosConfig(dim=16, intermediate_dim=32, num_layers=2, lookahead_frames=0)
    ),
    "vocos-lookahead-1": dict(
        decoder="vocos", vocos=VocosConfig(dim=16, intermediate_dim=32, num_layers=2, lookahead_frames=1)
    ),
    # The shipped causal layouts: 4 iSTFT frames per code frame (hop 80, window 320), no look-ahead or one
    # code frame of it (4 head frames).
    "vocos-head4-lookahead-0": dict(
        decoder="vocos",
        vocos=VocosConfig(dim=16, intermediate_dim=32, num_layers=2, head_upsample=4, lookahead_frames=0),
    ),
    "vocos-head4-lookahead-4": dict(
        decoder="vocos",
        vocos=VocosConfig(dim=16, intermediate_dim=32, num_layers=2, head_upsample=4, lookahead_frames=4),
    ),
}


def causal_codec(kind: str, seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    cfg = ModelConfig(channels=4, latent_dim=16, n_residual_layers=1, causal=True, **DECODERS[kind])
    codec = build_codec(cfg, QuantizerConfig(num_levels=3, codebook_size=32), 16000, seed=seed)
    codec.train()
    codec(0.3 * torch.randn(2, 1, 16000))  # seeds the codebooks from the encoder's latents
    return codec.eval()


def stream(codec: Codec, x: np.ndarray, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
    codes, audio = [], []
    for start in range(0, x.shape[0], chunk):
        c = enc.encode(torch.from_numpy(x[start : start + chunk]))
        codes.append(c)
        audio.append(dec.decode(c))
    codes.append(last := enc.flush())
    audio += [dec.decode(last), dec.flush()]
    return torch.cat(codes, dim=1), torch.cat(audio)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return speechlike(1.37, 16000)[:, 0]  # not a whole number of hops


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize("chunk", [HOP, 7 * HOP, 16000], ids=["1-hop", "7-hops", "1-second"])
def test_streaming_equals_offline(kind, chunk, signal):
    codec = causal_codec(kind)
    x = torch.from_numpy(signal).view(1, 1, -1)
    offline_codes = codec.encode(x)[0]
    offline_audio = codec.decode(offline_codes[None])[0, 0]
    codes, audio = stream(codec, signal, chunk)
    assert torch.equal(codes, offline_codes)
    assert audio.shape == offline_audio.shape == (codes.shape[1] * HOP,)
    assert (audio - offline_audio).abs().max() <= BOUND


def test_chunks_of_odd_sizes_give_the_same_codes(signal):
    codec = causal_codec("seanet")
    enc = StreamingEncoder(codec)
    pieces = np.split(signal, [17, 400, 401, 5000])
    codes = torch.cat([enc.encode(torch.from_numpy(p)) for p in pieces] + [enc.flush()], dim=1)
    assert torch.equal(codes, codec.encode(torch.from_numpy(signal).view(1, 1, -1))[0])
    assert enc.num_samples == signal.shape[0]


def test_state_is_carried_across_calls(signal):
    codec = causal_codec("seanet-lstm")
    half = 10 * HOP
    carried = StreamingEncoder(codec)
    carried.encode(torch.from_numpy(signal[:half]))
    fresh = StreamingEncoder(codec)  # the second half without the first: other convolution and LSTM states
    assert not torch.equal(
        carried.encode(torch.from_numpy(signal[half:])), fresh.encode(torch.from_numpy(signal[half:]))
    )


def test_a_non_causal_model_is_refused_and_latency_is_read_from_the_architecture():
    torch.manual_seed(0)
    offline = build_codec(
        ModelConfig(channels=4, latent_dim=16, n_residual_layers=1),
        QuantizerConfig(num_levels=2, codebook_size=16),
        16000,
    )
    with pytest.raises(NotCausal, match="not causal"):
        StreamingEncoder(offline)
    with pytest.raises(NotCausal, match="not causal"):
        StreamingDecoder(offline)
    assert algorithmic_latency(causal_codec("seanet")).total_ms == 20.0
    assert algorithmic_latency(causal_codec("vocos-lookahead-1")) == (20.0, 20.0)
    assert algorithmic_latency(causal_codec("vocos-lookahead-0")).total_ms == 20.0
    assert algorithmic_latency(causal_codec("vocos-head4-lookahead-4")) == (20.0, 20.0)
    assert algorithmic_latency(causal_codec("vocos-head4-lookahead-0")).total_ms == 20.0
