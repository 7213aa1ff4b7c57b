"""Settings of the training losses and of the discriminators (codec.losses): the ``loss:`` section of
params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AdversarialLoss = Literal["hinge", "lsgan"]
DiscriminatorKind = Literal["msstft", "mpd", "mrd"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Which sub-discriminators judge the output, and their sizes (for CPU runs; see codec.losses.discriminator).

    ``msstft``: EnCodec's multi-scale STFT discriminator (one per ``fft_sizes``); ``mpd``: HiFi-GAN's
    multi-period discriminator (one per ``periods``); ``mrd``: DAC's multi-band multi-resolution STFT
    discriminator (one per ``band_fft_sizes``, each band of ``bands`` with its own convolutions).
    DAC's 16 kHz model uses ``[mpd, mrd]`` with periods 2, 3, 5, 7, 11, FFT sizes 2048, 1024, 512, 32 channels
    and period-discriminator widths 32, 128, 512, 1024.
    """

    kinds: list[DiscriminatorKind] = field(default_factory=lambda: ["msstft"])
    channels: int = 16  # filters of every 2D convolution of msstft and mrd
    fft_sizes: list[int] = field(default_factory=lambda: [1024, 2048, 512])  # msstft; hop = n_fft / 4, Hann
    kernel_size: tuple[int, int] = (3, 9)  # (time, frequency), msstft and mrd
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])  # msstft: in time, one strided conv each
    negative_slope: float = 0.2  # LeakyReLU
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])  # mpd
    period_channels: list[int] = field(default_factory=lambda: [16, 64, 256, 512])  # mpd widths, stride 3 each
    band_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512])  # mrd; hop = n_fft / 4
    bands: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    )  # mrd: fractions of the bins

    def __post_init__(self) -> None:
        if not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"discriminator kinds must be a non-empty list without repeats, got {self.kinds}")
        if self.channels < 1 or not self.fft_sizes or any(n < 4 for n in self.fft_sizes + self.band_fft_sizes):
            raise ValueError("discriminator needs channels >= 1 and FFT sizes >= 4")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"discriminator kernel sizes must be odd, got {self.kernel_size}")
        if "mpd" in self.kinds and (
            not self.periods or min(self.periods) < 1 or not self.period_channels or min(self.period_channels) < 1
        ):
            raise ValueError("mpd needs periods >= 1 and channels >= 1")
        if "mrd" in self.kinds and (
            not self.band_fft_sizes or not self.bands or any(not 0.0 <= lo < hi <= 1.0 for lo, hi in self.bands)
        ):
            raise ValueError(f"mrd needs FFT sizes and bands 0 <= lo < hi <= 1, got {self.bands}")


@dataclass(frozen=True)
class CosineDecay:
    """When the waveform cosine term hands over to the spectral terms, in fractions of ``train.steps``.

    The cosine aligns the output's phase, which the codec needs early (at weight 3 from the start the levels go
    unused). Once aligned it is a waveform regression: where the phase cannot be predicted it pulls the
    amplitude down, above 1 kHz most (3.6 dB under the input's there after 8,200 steps at weight 10). From
    ``start`` to ``end`` the weight goes linearly from ``waveform_cosine_weight`` to ``final_weight``; the
    default (``start`` 1) never decays within a run.
    """

    start: float = 1.0
    end: float = 1.0
    final_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(f"waveform_cosine_decay needs 0 <= start <= end <= 1, got {self.start}, {self.end}")
        if self.final_weight < 0:
            raise ValueError("waveform_cosine_decay.final_weight must be >= 0")


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of every loss term (the commitment loss is weighted in QuantizerConfig)."""

    waveform_l1_weight: float = 0.1
    waveform_cosine_weight: float = 10.0  # the term that aligns the waveform's phase (waveform_cosine_loss)
    waveform_cosine_decay: CosineDecay = field(default_factory=CosineDecay)  # its hand-over, late in a run
    spectral_convergence_weight: float = 1.0
    log_magnitude_weight: float = 1.0
    stft_fft_sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])  # hop = n_fft / 4, Hann
    mel_weight: float = 1.0
    mel_fft_sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])  # hop = n_fft / 4
    mel_n_mels: int | list[int] = 64  # one count for every size, or one per size (DAC: 5, 10, ..., 320)
    # Power-law compressed spectra (|S|^0.3), magnitude and complex (CompressedSpectrumLoss); 0 = off.
    compressed_spectrum_weight: float = 0.0
    compressed_spectrum_fft_sizes: list[int] = field(default_factory=lambda: [320, 640, 1280])  # hop = n_fft / 4
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0
    adversarial_start_step: int = 1000  # generator step at which the discriminator joins in
    adversarial_every: int = 1  # from then on it takes part in every k-th step only (cheaper steps between)
    adversarial_loss: AdversarialLoss = "hinge"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        weights = (
            "waveform_l1_weight",
            "waveform_cosine_weight",
            "spectral_convergence_weight",
            "log_magnitude_weight",
            "mel_weight",
            "adversarial_weight",
            "feature_matching_weight",
            "compressed_spectrum_weight",
        )
        for name in weights:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.adversarial_start_step < 0:
            raise ValueError("adversarial_start_step must be >= 0")
        if self.adversarial_every < 1:
            raise ValueError(f"adversarial_every must be >= 1, got {self.adversarial_every}")
        if not self.compressed_spectrum_fft_sizes or min(self.compressed_spectrum_fft_sizes) < 4:
            raise ValueError("compressed_spectrum_fft_sizes: at least one size of 4 samples or more")
        if not self.stft_fft_sizes or not self.mel_fft_sizes or min(self.mel_bands) < 1:
            raise ValueError("need at least one STFT size, one mel size and one mel band")
        if isinstance(self.mel_n_mels, list) and len(self.mel_n_mels) != len(self.mel_fft_sizes):
            raise ValueError(f"mel_n_mels lists {len(self.mel_n_mels)} counts for {len(self.mel_fft_sizes)} mel sizes")

    def cosine_weight(self, progress: float) -> float:
        """The waveform cosine term's weight at ``progress`` (step / train.steps, 0 to 1)."""
        decay, weight = self.waveform_cosine_decay, self.waveform_cosine_weight
        if progress <= decay.start:
            return weight
        if progress >= decay.end:
            return decay.final_weight
        return weight + (decay.final_weight - weight) * (progress - decay.start) / (decay.end - decay.start)

    @property
    def mel_bands(self) -> list[int]:
        """Mel bands of each size of ``mel_fft_sizes``."""
        n = self.mel_n_mels
        return list(n) if isinstance(n, list) else [n] * len(self.mel_fft_sizes)
