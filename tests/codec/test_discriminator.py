import pytest
import torch

from codec.discriminator import DiscriminatorConfig, MultiScaleSTFTDiscriminator

SMALL = DiscriminatorConfig(channels=4, fft_sizes=[256, 512, 128])


@pytest.mark.parametrize("length", [100, 2000])
def test_output_shapes(length):
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(SMALL)
    out = disc(torch.randn(3, 1, length))
    assert len(out.logits) == len(out.features) == 3
    for n_fft, logits, feats in zip(SMALL.fft_sizes, out.logits, out.features):
        frames = (max(length, n_fft) - n_fft) // (n_fft // 4) + 1
        bins = n_fft // 2 + 1
        for _ in SMALL.dilations:  # each dilated conv halves the frequency axis (ceil)
            bins = (bins + 1) // 2
        assert logits.shape == (3, 1, frames, bins)
        assert len(feats) == len(SMALL.dilations) + 2
        assert all(f.shape[:3] == (3, 4, frames) for f in feats)


def test_gradients_reach_the_input_and_every_parameter():
    disc = MultiScaleSTFTDiscriminator(SMALL)
    x = torch.randn(2, 1, 1024, requires_grad=True)
    sum(l.mean() for l in disc(x).logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_bf16_autocast_runs():
    disc = MultiScaleSTFTDiscriminator(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = disc(torch.randn(2, 1, 1024))
    assert all(torch.isfinite(l.float()).all() for l in out.logits)


def test_config_rejects_even_kernels():
    with pytest.raises(ValueError):
        DiscriminatorConfig(kernel_size=(3, 8))
