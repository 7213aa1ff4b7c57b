import pytest
import torch

from codec.config.loss import DiscriminatorConfig
from codec.losses.discriminator import Discriminator

SMALL = DiscriminatorConfig(channels=4, fft_sizes=[256, 512, 128])


@pytest.mark.parametrize("length", [100, 2000])
def test_output_shapes(length):
    torch.manual_seed(0)
    disc = Discriminator(SMALL)
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
    disc = Discriminator(SMALL)
    x = torch.randn(2, 1, 1024, requires_grad=True)
    sum(logit.mean() for logit in disc(x).logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_bf16_autocast_runs():
    disc = Discriminator(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = disc(torch.randn(2, 1, 1024))
    assert all(torch.isfinite(logit.float()).all() for logit in out.logits)


def test_config_rejects_even_kernels():
    with pytest.raises(ValueError):
        DiscriminatorConfig(kernel_size=(3, 8))


# ------------------------------------------------------------------ multi-period and multi-band (DAC)

from codec.losses.codec_loss import discriminator_adversarial_loss  # noqa: E402
from codec.losses.discriminator import BandSTFTDiscriminator, PeriodDiscriminator  # noqa: E402

DAC_SMALL = DiscriminatorConfig(
    kinds=["mpd", "mrd"], channels=4, periods=[2, 3, 5], period_channels=[4, 8], band_fft_sizes=[256, 128]
)


@pytest.mark.parametrize("length", [1000, 4001])
def test_period_discriminator_folds_by_its_period(length):
    torch.manual_seed(0)
    disc = PeriodDiscriminator(5, DAC_SMALL)
    logits, feats = disc(torch.randn(2, 1, length))
    rows = -(-length // 5)
    for _ in DAC_SMALL.period_channels:  # each strided conv: kernel 5, stride 3, padding 2
        rows = (rows - 1) // 3 + 1
    assert logits.shape == (2, 1, rows, 5)
    assert [f.shape[1] for f in feats] == [4, 8, 8]


def test_band_discriminator_splits_bins_into_bands():
    torch.manual_seed(0)
    disc = BandSTFTDiscriminator(256, DAC_SMALL)
    bins = 129
    assert disc.bands[0][0] == 0 and disc.bands[-1][1] == bins
    assert all(a[1] == b[0] for a, b in zip(disc.bands, disc.bands[1:]))  # contiguous, no overlap
    logits, feats = disc(torch.randn(2, 1, 4000))
    frames = (4000 - 256) // 64 + 1
    assert logits.shape[:3] == (2, 1, frames)
    assert len(feats) == 5 * len(DAC_SMALL.bands)


def test_combined_discriminator_runs_every_kind():
    disc = Discriminator(DAC_SMALL)
    assert len(disc.discriminators) == 3 + 2
    x = torch.randn(2, 1, 3000, requires_grad=True)
    out = disc(x)
    assert len(out.logits) == len(out.features) == 5
    sum(logit.mean() for logit in out.logits).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in disc.parameters())
    only_stft = Discriminator(SMALL)
    assert (
        len(only_stft.discriminators) == 3
        and "discriminators.0.convs.0.parametrizations.weight.original0" in only_stft.state_dict()
    )  # the MS-STFT layout of earlier checkpoints


def _real_and_fake(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Real: harmonic tones with random pitch; fake: the same tones with the upper harmonics smeared into noise."""
    t = torch.arange(length) / 16000
    f0 = 100 + 150 * torch.rand(batch, 1, 1, generator=generator)
    real = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 6))
    noise = torch.randn(batch, 1, length, generator=generator)
    fake = torch.sin(2 * torch.pi * f0 * t) + 0.3 * noise
    return 0.3 * real, 0.3 * fake


@pytest.mark.parametrize("kind", ["msstft", "mpd", "mrd"])
def test_each_kind_learns_to_separate_real_from_fake(kind):
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(
        kinds=[kind], channels=4, fft_sizes=[256], periods=[2, 3], period_channels=[4, 8], band_fft_sizes=[256]
    )
    disc = Discriminator(cfg)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(60):
        real, fake = _real_and_fake(4, 2048, generator)
        loss = discriminator_adversarial_loss(disc(real).logits, disc(fake).logits, "hinge")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    real, fake = _real_and_fake(8, 2048, torch.Generator().manual_seed(99))  # unseen examples
    with torch.no_grad():

        def score(x):
            return torch.stack([logit.mean() for logit in disc(x).logits]).mean()

        margin = float(score(real) - score(fake))
    assert margin > 0.5  # on unseen examples; the hinge loss aims at +1 for real and -1 for fake
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5  # from 2 (no separation) downwards
