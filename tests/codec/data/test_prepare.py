import csv
import json
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from codec.config.convert import ConfigError, from_dict
from codec.config.prepare import PrepareConfig
from codec.data.corpora.base import Utterance
from codec.data.corpora.ulca import write_index
from codec.data.prepare import PrepareError, merge_shards, prepare_shard, run_prepare, shard_of
from codec.data.shards import audio_arrays, read_manifest, read_table, split_files

SR = 16000
# (rate, channels, subtype) cycled over the good files: every bit depth, stereo, 8-96 kHz.
FORMATS = [
    (8000, 1, "PCM_U8"),
    (22050, 2, "PCM_16"),
    (44100, 1, "PCM_24"),
    (48000, 2, "PCM_32"),
    (96000, 1, "FLOAT"),
    (16000, 1, "PCM_16"),
]
BAD = {
    "b_empty": "empty",
    "b_trunc": "truncated",
    "b_text": "unreadable",
    "b_nan": "non-finite",
    "b_silent": "silent",
    "b_short": "too-short",
    "b_missing": "missing",
    "b_dir": "not-a-file",
}


def voice(rate: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_bad(path, kind):
    if kind == "b_empty":
        path.write_bytes(b"")
    elif kind == "b_trunc":
        sf.write(path, voice(SR, 1.0, 0), SR, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "b_text":
        path.write_text("<html>not audio</html>")
    elif kind == "b_nan":
        sf.write(path, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    elif kind == "b_silent":
        sf.write(path, np.zeros(SR, np.float32), SR)
    elif kind == "b_short":
        sf.write(path, voice(SR, 0.3, 1), SR)
    elif kind == "b_dir":
        path.mkdir()


@pytest.fixture
def corpus(tmp_path):
    """ULCA corpus: 6 speakers x 3 good clips, one 7 s clip, and one of each bad kind."""
    root = tmp_path / "corpus"
    root.mkdir()
    utts = []
    for i in range(18):
        rate, channels, subtype = FORMATS[i % len(FORMATS)]
        x = voice(rate, 0.8, i)
        path = root / f"clip{i:02d}.wav"
        sf.write(path, np.stack([x, x], 1) if channels == 2 else x, rate, subtype=subtype)
        utts.append(Utterance(id=path.stem, path=path, speaker=f"spk{i % 6}", gender="male", text=f"వాక్యం {i}"))
    sf.write(root / "long.wav", voice(22050, 7.0, 99), 22050)
    utts.append(Utterance(id="long", path=root / "long.wav", speaker="spk0", text="పొడవైన"))
    sf.write(root / "loud.wav", 10.0 * voice(SR, 0.8, 98), SR, subtype="FLOAT")  # peaks near 3.2: clipped, kept
    utts.append(Utterance(id="loud", path=root / "loud.wav", speaker="spk1"))
    for kind in BAD:
        write_bad(root / f"{kind}.wav", kind)
        utts.append(Utterance(id=kind, path=root / f"{kind}.wav", speaker="spk_bad"))
    write_index(root, utts)
    return root


def config(root, **kw):
    return PrepareConfig(
        corpus=str(root), num_shards=2, max_seconds=3.0, min_seconds=0.5, row_group_rows=4, workers=1, **kw
    )


def run(cfg, out):
    return run_prepare(cfg, SR, out / "shards", out / "stats.json", out / "rejected.csv")


def test_prepare_end_to_end(corpus, tmp_path):
    out = tmp_path / "out"
    stats, summaries = run(config(corpus), out)
    rejected = {r["id"]: r for r in csv.DictReader(open(out / "rejected.csv", encoding="utf-8"))}
    assert {k: r["reason"].split(":")[0] for k, r in rejected.items()} == BAD
    assert rejected["b_trunc"]["source_path"] == "b_trunc.wav"
    assert stats.source_files == 28 and stats.rejected == len(BAD)
    assert stats.rejected_by_reason == {
        "empty": 1,
        "missing": 1,
        "non-finite": 1,
        "not-a-file": 1,
        "silent": 1,
        "too-short": 1,
        "truncated": 1,
        "unreadable": 1,
    }
    assert stats.clipped_files == 1 and stats.clipped_samples > 0.3 * SR
    assert json.loads((out / "stats.json").read_text()) == {**json.loads(json.dumps(stats.__dict__))}
    assert sum(s["utterances"] for s in stats.splits.values()) == 18 + 3 + 1  # the 7 s clip became 3 segments

    tables = {split: read_table(split_files(out / "shards", split)) for split in ("train", "valid", "test")}
    speakers = defaultdict(set)
    for split, table in tables.items():
        speakers[split] |= set(table.column("speaker").to_pylist())
        assert set(table.column("split").to_pylist()) <= {split}
        for a, n in zip(audio_arrays(table.column("audio")), table.column("num_samples").to_pylist()):
            assert a.dtype == np.int16 and a.size == n and n >= 0.5 * SR
    assert not (
        speakers["train"] & speakers["valid"]
        or speakers["train"] & speakers["test"]
        or speakers["valid"] & speakers["test"]
    )
    rows = {r["id"]: r for t in tables.values() for r in t.drop_columns(["audio"]).to_pylist()}
    assert [rows[f"long-{k:03d}"]["segment"] for k in range(3)] == [0, 1, 2]
    assert rows["long-001"]["text"] is None and rows["clip03-000"]["text"] == "వాక్యం 3"
    assert rows["clip04-000"]["source_sample_rate"] == 96000 and rows["clip04-000"]["sample_rate"] == SR
    assert abs(rows["clip01-000"]["num_samples"] - 0.8 * SR) <= 0.02 * SR  # stereo 22.05 kHz, mostly kept
    assert rows["clip00-000"]["format"] == "ulca" and rows["clip00-000"]["corpus"] == "corpus"

    manifest = read_manifest(out / "shards")
    for entry in manifest["splits"].values():
        for f in entry["files"]:
            ids = pq.read_table(out / "shards" / f["path"], columns=["id"]).column("id").to_pylist()
            assert ids == sorted(ids) and len(ids) == f["rows"]
            assert all(shard_of(i.rsplit("-", 1)[0], 2) == int(f["path"][-13:-8]) for i in ids)
    assert [s.shard for s in summaries] == [0, 1] and manifest["params"]["prepare"]["max_seconds"] == 3.0


def test_prepare_is_deterministic_whatever_the_workers(corpus, tmp_path):
    run(config(corpus), tmp_path / "a")
    run(replace(config(corpus), workers=2), tmp_path / "b")
    a, b = read_manifest(tmp_path / "a" / "shards"), read_manifest(tmp_path / "b" / "shards")
    assert a == b and any(f["rows"] for f in a["splits"]["train"]["files"])
    for name in ("stats.json", "rejected.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_shard_jobs_then_merge_equal_the_one_shot_run(corpus, tmp_path):
    cfg = config(corpus)
    run(cfg, tmp_path / "one")
    out = tmp_path / "jobs"
    for shard in (1, 0):
        prepare_shard(cfg, SR, out / "shards", shard)
    merge_shards(cfg, SR, out / "shards", out / "stats.json", out / "rejected.csv")
    assert read_manifest(out / "shards") == read_manifest(tmp_path / "one" / "shards")


def test_merge_refuses_missing_or_foreign_parts(corpus, tmp_path):
    cfg, out = config(corpus), tmp_path / "shards"
    prepare_shard(cfg, SR, out, 0)
    with pytest.raises(PrepareError, match="shard 1 of 2 has not been prepared"):
        merge_shards(cfg, SR, out, tmp_path / "s.json", tmp_path / "r.csv")
    prepare_shard(replace(cfg, trim_top_db=30.0), SR, out, 1)
    with pytest.raises(PrepareError, match="another corpus or config"):
        merge_shards(cfg, SR, out, tmp_path / "s.json", tmp_path / "r.csv")
    with pytest.raises(PrepareError, match="outside"):
        prepare_shard(cfg, SR, out, 2)


def test_nothing_usable_fails_clearly(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    for kind in ("b_empty", "b_silent", "b_text"):
        write_bad(root / f"{kind}.wav", kind)
    with pytest.raises(PrepareError, match="all 3 files were rejected"):
        run(config(root), tmp_path / "out")
    assert len((tmp_path / "out" / "rejected.csv").read_text().splitlines()) == 4
    assert not (tmp_path / "out" / "shards" / "manifest.json").exists()
    leftovers = [p for p in (tmp_path / "out" / "shards").rglob("*") if p.is_file()]
    assert leftovers == []  # no empty Parquet parts, no part json


@pytest.mark.parametrize(
    "bad", [{"max_seconds": 0.2}, {"num_shards": 0}, {"split": {"valid": 0.6, "test": 0.5}}, {"resample_quality": "LQ"}]
)
def test_config_is_validated(bad):
    with pytest.raises(ConfigError):
        from_dict(PrepareConfig, {"corpus": "x", **bad})


def test_more_shards_than_files_gives_empty_but_valid_shards(tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    for i in range(2):
        sf.write(root / f"a{i}.wav", voice(SR, 1.0, i), SR)
    stats, summaries = run(replace(config(root), num_shards=8), tmp_path / "out")
    assert sum(s.source_files == 0 for s in summaries) >= 6
    files = [
        tmp_path / "out" / "shards" / f["path"]
        for e in read_manifest(tmp_path / "out" / "shards")["splits"].values()
        for f in e["files"]
    ]
    assert len(files) == 24 and sum(read_table(f).num_rows for f in files) == 2
