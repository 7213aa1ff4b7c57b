"""experiments/quantizer_gap.py: the unquantized ceiling beside the quantized rates, decoded as evaluate decodes."""

from __future__ import annotations

import torch

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.formats.weights import save_codec_weights
from codec.model.codec import build_codec
from experiments.quantizer_gap import UNQUANTIZED, decodings, main, rate_label


def _tiny_codec():
    torch.manual_seed(0)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=8, strides=[2, 4], n_residual_layers=1),
        QuantizerConfig(num_levels=3, codebook_size=16),
        16000,
    )
    codec.train()
    with torch.no_grad():
        codec(0.3 * torch.randn(4, 1, 4000))  # seeds the codebooks from the encoder's latents
    return codec.eval()


def test_the_quantized_decodings_are_the_codecs_own_and_the_ceiling_skips_the_quantizer():
    codec = _tiny_codec()
    x = 0.3 * torch.randn(1, 1, 1001)  # not a multiple of the hop: padded, then cropped back
    out = decodings(codec, x, [3, 1])
    assert list(out) == [UNQUANTIZED, rate_label(codec, 3), rate_label(codec, 1)]
    assert rate_label(codec, 1) == "1 level (8 kbps)" and rate_label(codec, 3) == "3 levels (24 kbps)"
    for n_q, name in zip([3, 1], list(out)[1:]):
        with torch.no_grad():
            assert torch.equal(out[name], codec(x, n_q).reconstruction[0, 0])  # what evaluate scores
    with torch.no_grad():
        ceiling = codec.decoder(codec.encoder(torch.nn.functional.pad(x, (0, 7))))[0, 0, :1001]
    assert torch.equal(out[UNQUANTIZED], ceiling) and not torch.equal(out[UNQUANTIZED], out[list(out)[1]])
    assert all(y.shape == (1001,) for y in out.values())


def test_main_writes_one_row_per_decoding_and_drops_levels_the_codec_lacks(tiny_shards, tmp_path, capsys):
    codec = _tiny_codec()
    weights = save_codec_weights(tmp_path / "tiny.safetensors", codec.state_dict(), codec.config)
    out = tmp_path / "gap.md"
    main(
        [
            f"tiny={weights}",
            "--shards",
            str(tiny_shards),
            "--levels",
            "12",
            "2",
            "1",
            "--segments",
            "2",
            "--out",
            str(out),
        ]
    )
    table = out.read_text().splitlines()
    assert table[0].startswith("2 test segments of ")
    rows = [line for line in table if line.startswith("| tiny |")]
    assert [row.split(" | ")[1] for row in rows] == [UNQUANTIZED, "2 levels (16 kbps)", "1 level (8 kbps)"]
    assert capsys.readouterr().out.splitlines() == rows
