"""Settings of the training losses and of the discriminator: the ``loss:`` section of params.yaml.

Kept apart from codec.losses and codec.discriminator (torch modules) so that pipeline.params can
read params.yaml without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AdversarialLoss = Literal["hinge", "lsgan"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sized for CPU runs; on a GPU EnCodec uses ``channels: 32``."""

    channels: int = 16  # filters of every 2D convolution
    fft_sizes: list[int] = field(default_factory=lambda: [1024, 2048, 512])  # hop = n_fft / 4, Hann window
    kernel_size: tuple[int, int] = (3, 9)  # (time, frequency)
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])  # in time, one strided conv each
    negative_slope: float = 0.2  # LeakyReLU

    def __post_init__(self) -> None:
        if self.channels < 1 or not self.fft_sizes or any(n < 4 for n in self.fft_sizes):
            raise ValueError("discriminator needs channels >= 1 and FFT sizes >= 4")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"discriminator kernel sizes must be odd, got {self.kernel_size}")


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of every loss term (the commitment loss is weighted in QuantizerConfig)."""

    waveform_l1_weight: float = 0.1
    waveform_cosine_weight: float = 10.0  # the term that aligns the waveform's phase (waveform_cosine_loss)
    spectral_convergence_weight: float = 1.0
    log_magnitude_weight: float = 1.0
    stft_fft_sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])  # hop = n_fft / 4, Hann
    mel_weight: float = 1.0
    mel_fft_sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])  # hop = n_fft / 4
    mel_n_mels: int = 64
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 2.0
    adversarial_start_step: int = 1000  # generator step at which the discriminator joins in
    adversarial_loss: AdversarialLoss = "hinge"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        weights = ("waveform_l1_weight", "waveform_cosine_weight", "spectral_convergence_weight",
                   "log_magnitude_weight", "mel_weight", "adversarial_weight", "feature_matching_weight")
        for name in weights:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.adversarial_start_step < 0:
            raise ValueError("adversarial_start_step must be >= 0")
        if not self.stft_fft_sizes or not self.mel_fft_sizes or self.mel_n_mels < 1:
            raise ValueError("need at least one STFT size, one mel size and one mel band")
