"""Report figures as PNG (matplotlib, Agg backend): rate-distortion curves and spectrogram comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FormatStrFormatter, NullLocator

from codec.dsp.mel import magnitude, stft
from codec.evaluation.scoring import CODEC, METRICS, Example
from codec.runtime.io import atomic_path

SPECTROGRAM_FFT = 512
DPI = 90
_STYLE = {CODEC: {"color": "tab:blue", "marker": "o"}, "opus": {"color": "tab:orange", "marker": "s"}}


def save_png(fig: Any, path: str | Path) -> None:
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def rate_distortion_figure(curves: dict[str, list[dict[str, Any]]], title: str, path: str | Path) -> None:
    """One panel per metric, value against kbps (log axis) for each system.

    ``curves``: system -> rows with ``kbps`` (and for the codec ``entropy_kbps``, drawn dashed: the same
    scores at the rate an entropy coder would reach) and one mean per metric (None when undefined).
    """
    names = list(METRICS)
    cols = 4
    panel_rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(panel_rows, cols, figsize=(4 * cols, 3.1 * panel_rows + 0.6), squeeze=False)
    # Fixed layout and ticks only at the scored bitrates: automatic layout and log-axis minor tick
    # labels made this figure take seconds.
    fig.subplots_adjust(left=0.05, right=0.99, top=0.9, bottom=0.16, wspace=0.25, hspace=0.45)
    ticks = sorted({r["kbps"] for rows_ in curves.values() for r in rows_})
    for ax, name in zip(axes.flat, names):
        for system, rows in curves.items():
            points = [(r["kbps"], r[name]) for r in rows if r.get(name) is not None]
            if not points:
                continue
            style = _STYLE.get(system, {})
            ax.plot(*zip(*points), label=system, **style)
            # A log axis cannot show a zero rate (a level that always picks the same code).
            entropy = [
                (r["entropy_kbps"], r[name])
                for r in rows
                if system == CODEC and r.get(name) is not None and (r.get("entropy_kbps") or 0) > 0
            ]
            if entropy:
                ax.plot(*zip(*entropy), linestyle="--", alpha=0.6, label="codec (entropy-coded rate)", **style)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("kbit/s")
        ax.set_title(f"{name} ({'higher' if METRICS[name] else 'lower'} is better)", fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles))
    fig.suptitle(title)
    save_png(fig, path)


def log_spectrogram(x: np.ndarray, n_fft: int = SPECTROGRAM_FFT) -> np.ndarray:
    """``20 log10 |STFT|`` in dB, ``[bins, frames]`` (Hann, hop ``n_fft / 4``, floor -120 dB)."""
    window = torch.hann_window(n_fft)
    mag = magnitude(
        stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], n_fft, n_fft // 4, window), 1e-12
    )
    return (20.0 * torch.log10(mag[0])).numpy()


def spectrogram_figure(example: Example, sample_rate: int, path: str | Path) -> None:
    """Original and decoded versions stacked, one shared dB colour scale (80 dB below the original's peak)."""
    panels = [("original", example.original)] + [(s.label, y) for s, y in example.versions.items()]
    specs = [log_spectrogram(y) for _, y in panels]
    top = float(specs[0].max())
    seconds = example.original.shape[0] / sample_rate
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.8 * len(panels) + 0.6), sharex=True, squeeze=False)
    fig.subplots_adjust(
        left=0.07, right=0.88, top=1 - 0.45 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(), hspace=0.35
    )
    for ax, (label, _), spec in zip(axes[:, 0], panels, specs):
        image = ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=top - 80.0,
            vmax=top,
            extent=(0.0, seconds, 0.0, sample_rate / 2000.0),
        )
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.colorbar(image, cax=fig.add_axes((0.9, 0.15, 0.02, 0.7)), label="dB")
    fig.suptitle(f"{example.corpus}: {example.utterance}", fontsize=10)
    save_png(fig, path)
