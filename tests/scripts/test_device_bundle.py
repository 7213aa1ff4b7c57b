"""scripts/device_bundle.py: the corpus a GPU machine gets is lossless, fits its budget and keeps the splits."""

import json

import numpy as np
import soundfile as sf

from codec.data.corpora.base import Utterance
from codec.data.corpora.ulca import read, write_index
from codec.data.splits import assign_splits
from scripts.device_bundle import flac_corpus


def _ulca_corpus(root, speakers=6, per_speaker=3):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    utterances = []
    for s in range(speakers):
        for u in range(per_speaker):
            path = root / f"s{s}u{u}.wav"
            seconds = 0.5 + 0.25 * u
            x = (0.3 * np.sin(2 * np.pi * (150 + 20 * s) * np.arange(int(16000 * seconds)) / 16000)) + 0.01 * (
                rng.standard_normal(int(16000 * seconds))
            )
            sf.write(path, x, 16000, subtype="PCM_16")
            utterances.append(Utterance(id=path.stem, path=path, speaker=f"spk{s}", duration=seconds))
    write_index(root, utterances)
    return root


def test_the_flac_copy_is_lossless_fits_and_leaves_out_train_files_only(tmp_path):
    src = _ulca_corpus(tmp_path / "src")
    before = assign_splits(read(src), 0.2, 0.2)
    full = flac_corpus(src, tmp_path / "all", 10**9, 0.2, 0.2, seed=0)
    assert full == []
    for u in read(src):
        a = sf.read(u.path, dtype="int16")[0]
        b = sf.read(tmp_path / "all" / f"{u.id}.flac", dtype="int16")[0]
        assert np.array_equal(a, b)
    sizes = {p.stem: p.stat().st_size for p in (tmp_path / "all").glob("*.flac")}
    budget = sum(sizes.values()) - sum(sorted(sizes[i] for i in sizes if before[i] == "train")[-2:])
    left = flac_corpus(src, tmp_path / "cut", budget, 0.2, 0.2, seed=0)
    kept = {p.stem for p in (tmp_path / "cut").glob("*.flac")}
    assert left and all(before[i] == "train" for i in left) and kept == set(sizes) - set(left)
    assert sum(sizes[i] for i in kept) <= budget
    # Every record stays: prepare's splits, assigned from data.json, are the very same.
    assert len(json.loads((tmp_path / "cut" / "data.json").read_text())) == len(sizes)
    assert assign_splits(read(tmp_path / "cut"), 0.2, 0.2) == before
