"""Tokenizing a corpus: codes equal `telucodec encode`'s, decoding a row equals decoding the `.tcq`, resume,
a changed model, skipped segments, nothing half-written, and what a killed write left removed on the next run."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from codec.cli.main import main as cli
from codec.config.export import ExportConfig
from codec.config.prepare import PrepareConfig, SplitFractions
from codec.config.tokenize import TokenCorpus, TokenizeConfig
from codec.data.shards import iter_segments, split_files
from codec.formats.bitstream import read_bitstream
from codec.formats.export import export_codec, load_export
from codec.formats.tokens import TokenWriter, file_info, iter_tokens, level_column
from codec.model.chunked import decode_codes
from codec.tokens.corpus import run_tokenize, token_path, tokenize_shard
from tests.codec.conftest import make_tiny_codec

pytestmark = pytest.mark.usefixtures("single_thread")
PREPARE = PrepareConfig(corpus="unused", num_shards=2, split=SplitFractions(valid=0.2, test=0.2), workers=1)
CFG = TokenizeConfig(workers=1, row_group_rows=4)


def tokenize(model: Path, shards: Path, out: Path, cfg: TokenizeConfig = CFG, prepare: PrepareConfig = PREPARE):
    stats, parts = run_tokenize(model, shards, cfg, prepare, 16000, out, out / "stats.json", out / "skipped.csv")
    return stats, parts


def file_digests(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory, tiny_shards, tiny_export):
    out = tmp_path_factory.mktemp("tokens")
    stats, parts = tokenize(tiny_export, tiny_shards, out)
    return out, stats, parts


def test_every_segment_becomes_one_row_with_the_documented_schema(tokenized, tiny_shards, tiny_export):
    out, stats, _ = tokenized
    model = load_export(tiny_export)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_id"] == model.model_id and manifest["levels"] == 4
    size = int(model.codec.quantizer.codebook_size)
    for f in manifest["corpora"]["shards"]["splits"]["train"]["files"]:  # the codebook size is in every file
        assert file_info(out / f["path"])["codebook_size"] == size == manifest["codebook_size"]
    for split in ("train", "valid", "test"):
        ids = [row.id for row in iter_segments(split_files(tiny_shards, split))]
        files = [out / f["path"] for f in manifest["corpora"]["shards"]["splits"][split]["files"]]
        table = pq.read_table(files)  # plain pyarrow
        assert sorted(table.column("id").to_pylist()) == sorted(ids) and len(ids) > 0
        codes_type = table.schema.field(level_column(3)).type
        assert pa.types.is_list(codes_type) and codes_type.value_type == pa.int16()
        assert set(table.column("model_id").to_pylist()) == {model.model_id}
        frames, samples = table.column("num_frames").to_numpy(), table.column("num_samples").to_numpy()
        assert (frames == -(-samples // 320)).all() and set(table.column("levels").to_pylist()) == {4}
        assert set(table.column("split").to_pylist()) == {split}
        for level in range(4):
            assert [len(c) for c in table.column(level_column(level)).to_pylist()] == frames.tolist()
    corpus = stats["corpora"]["shards"]
    assert corpus["rows"] == sum(s["rows"] for s in manifest["corpora"]["shards"]["splits"].values())
    assert corpus["tokens"] == corpus["frames"] * 4 and len(corpus["levels"]) == 4
    assert all(0 < level["used_fraction"] <= 1 and 1 <= level["perplexity"] <= 32 for level in corpus["levels"])
    assert corpus["entropy_kbps"] <= corpus["nominal_kbps"] and corpus["model_coded_kbps"] > 0


def test_codes_equal_telucodec_encode_and_decoding_a_row_equals_decoding_the_tcq(
    tokenized, tiny_shards, tiny_export, tmp_path
):
    out, _, _ = tokenized
    model = load_export(tiny_export)
    segment = next(iter_segments(split_files(tiny_shards, "train")))
    wav = tmp_path / "segment.wav"
    sf.write(wav, segment.audio, segment.sample_rate, subtype="PCM_16")
    assert cli(["encode", str(wav), str(tmp_path / "segment.tcq"), "--model", str(tiny_export)]) == 0
    stream = read_bitstream(tmp_path / "segment.tcq")
    row = next(
        r
        for r in iter_tokens(sorted((out / "shards" / "train").glob("*.parquet")), columns=["id", "num_samples"])
        if r["id"] == segment.id
    )
    assert np.array_equal(row["codes"], stream.codes(model.probabilities))
    assert row["num_samples"] == stream.header.num_samples
    assert (
        cli(
            [
                "decode",
                str(tmp_path / "segment.tcq"),
                str(tmp_path / "out.wav"),
                "--model",
                str(tiny_export),
                "--subtype",
                "FLOAT",
            ]
        )
        == 0
    )
    decoded = np.concatenate(list(decode_codes(model.codec, row["codes"], row["num_samples"], 1000)))
    assert np.array_equal(decoded, sf.read(tmp_path / "out.wav", dtype="float32")[0])


def test_a_killed_run_resumes_finished_shards_and_ends_with_the_same_files(
    tokenized, tiny_shards, tiny_export, tmp_path
):
    straight, _, _ = tokenized
    out = tmp_path / "tokens"
    tokenize_shard(tiny_export, tiny_shards, CFG, PREPARE, 16000, out, 0)  # shard 0 done, then "killed"
    first = (out / "parts" / "part-00000.json").stat().st_mtime_ns
    _, parts = tokenize(tiny_export, tiny_shards, out)
    assert [p.get("kept", False) for p in parts] == [True, False]
    assert (out / "parts" / "part-00000.json").stat().st_mtime_ns == first
    assert file_digests(out) == file_digests(straight)
    # A damaged finished file is noticed and its shard done again.
    token_path(out, "shards", "train", 1).write_bytes(b"damaged")
    _, parts = tokenize(tiny_export, tiny_shards, out)
    assert [p.get("kept", False) for p in parts] == [True, False] and file_digests(out) == file_digests(straight)


def test_another_model_tokenizes_every_shard_again(tokenized, tiny_shards, tmp_path):
    straight, _, _ = tokenized
    other = tmp_path / "other.safetensors"
    export_codec(make_tiny_codec(seed=5), other, ExportConfig())
    out = tmp_path / "tokens"
    for f in straight.rglob("*"):  # the finished run of the first model, copied
        if f.is_file():
            (out / f.relative_to(straight)).parent.mkdir(parents=True, exist_ok=True)
            (out / f.relative_to(straight)).write_bytes(f.read_bytes())
    _, parts = tokenize(other, tiny_shards, out)
    assert not any(p.get("kept") for p in parts)
    assert json.loads((out / "manifest.json").read_text())["model_id"] == load_export(other).model_id


def test_bad_silent_and_short_segments_are_skipped_and_listed(tiny_shards, tiny_export, tmp_path):
    corpus = tmp_path / "extra"
    (corpus / "spk0").mkdir(parents=True)
    t = np.arange(3 * 16000) / 16000
    sf.write(corpus / "spk0" / "good.wav", 0.5 * np.sin(2 * np.pi * 220 * t), 16000)  # 150 frames
    sf.write(corpus / "spk0" / "silent.wav", np.zeros(16000), 16000)
    (corpus / "spk0" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    cfg = replace(CFG, corpora=[TokenCorpus("extra", str(corpus), "folder")], min_frames=120)
    out = tmp_path / "tokens"
    stats, _ = tokenize(tiny_export, tiny_shards, out, cfg)
    with open(out / "skipped.csv", newline="") as f:
        skipped = list(csv.DictReader(f))
    extra = {r["id"].split("/")[-1]: r["reason"] for r in skipped if r["corpus"] == "extra"}
    assert extra["silent"].startswith("silent") and set(extra) == {"silent", "broken"}
    short = [r["reason"] for r in skipped if r["corpus"] == "shards"]
    assert short and all(r.startswith("too short") for r in short)  # the shards' 2 s segments: 100 frames
    assert stats["corpora"]["extra"]["rows"] == 1 and stats["corpora"]["extra"]["skipped"] == 2
    assert stats["corpora"]["shards"]["skipped"] == len(short)


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    path = tmp_path / "part.parquet"
    with pytest.raises(RuntimeError), TokenWriter(path, 2, "m", 4, codebook_size=8) as writer:
        from codec.formats.tokens import TokenRow

        writer.add(TokenRow("a", "a", None, None, None, "train", 640, 16000, 50.0, np.zeros((2, 2), np.int16)))
        raise RuntimeError("killed")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_a_corpus_dropped_from_the_config_leaves_no_stale_files(tiny_shards, tiny_export, tmp_path):
    corpus = tmp_path / "extra"
    corpus.mkdir()
    sf.write(corpus / "a.wav", 0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)
    out = tmp_path / "tokens"
    tokenize(tiny_export, tiny_shards, out, replace(CFG, corpora=[TokenCorpus("extra", str(corpus), "folder")]))
    assert list((out / "extra").rglob("*.parquet"))
    tokenize(tiny_export, tiny_shards, out)
    assert not list((out / "extra").rglob("*.parquet"))


def test_temporary_files_a_killed_write_left_are_removed_and_finished_files_kept(
    tokenized, tiny_shards, tiny_export, tmp_path, capsys
):
    straight, _, _ = tokenized
    out = tmp_path / "tokens"
    tokenize_shard(tiny_export, tiny_shards, CFG, PREPARE, 16000, out, 0)  # shard 0 done, then "killed" while
    finished = file_digests(out)  # shard 1 and the merge were writing (atomic_path's temp names):
    left = [
        token_path(out, "shards", "train", 0).parent / ".part-00000.parquet.k2j9x_0a.tmp",
        token_path(out, "shards", "valid", 1).parent / ".part-00001.parquet.a8b7c6d5.tmp",
        out / "parts" / ".part-00001.json.zz1y2x3w.tmp",
        out / ".manifest.json.q9w8e7r6.tmp",
    ]
    others = [out / "notes.tmp", out / "parts" / "part-00001.json.tmp", out / ".part-00001.parquet.tmp.keep"]
    for path in left + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half-written")
    capsys.readouterr()
    _, parts = tokenize(tiny_export, tiny_shards, out)
    assert not [p for p in left if p.exists()] and all(p.exists() for p in others)
    assert [p.get("kept", False) for p in parts] == [True, False]  # the finished shard is kept as it was
    assert {k: v for k, v in file_digests(out).items() if "part-00000" in k} == finished
    assert file_digests(out) == file_digests(straight)
    assert [p["removed_temp_files"] for p in parts] == [1, 2]  # each shard its own, the merge the rest
    err = capsys.readouterr().err
    assert "shard 0: removed 1 temporary file(s)" in err and "shard 1: removed 2 temporary file(s)" in err
    assert "merge: removed 1 temporary file(s)" in err
