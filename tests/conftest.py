"""Shared test setup: small deterministic CPU runs."""

import os

import pytest

# Two cores on CI: keep intra-op threads low so parallel helpers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CORPUS = os.path.join(os.path.dirname(REPO_ROOT), "shared", "corpora", "chai-bisket-te")


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT


def write_speechlike_corpus(
    root, *, speakers: int = 4, utterances: int = 4, seconds: float = 2.0, sample_rate: int = 22050
) -> None:
    """A small plain-folder corpus ``<root>/<speaker>/<utt>.wav`` of voiced, speech-like signals.

    Each speaker has its own pitch; each utterance a slowly varying f0 contour, a few harmonics and
    syllable-rate amplitude modulation, so codecs and quantizers see structure, not white noise.
    """
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for s in range(speakers):
        folder = root / f"spk{s:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for u in range(utterances):
            f0 = (110 + 35 * s) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
            x = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(t.size)
            sf.write(folder / f"utt{u:02d}.wav", x / np.abs(x).max() * 0.8, sample_rate, subtype="PCM_16")


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Prepared Parquet shards (train/valid/test) of a 6-speaker speech-like corpus at 16 kHz."""
    from codec.config.prepare import PrepareConfig, SplitFractions
    from codec.data.prepare import run_prepare

    root = tmp_path_factory.mktemp("tiny")
    write_speechlike_corpus(root / "corpus", speakers=6, utterances=4)
    cfg = PrepareConfig(
        corpus=str(root / "corpus"), format="folder", num_shards=2, split=SplitFractions(valid=0.2, test=0.2), workers=1
    )
    run_prepare(cfg, 16000, root / "shards", root / "stats.json", root / "rejected.csv")
    return root / "shards"
