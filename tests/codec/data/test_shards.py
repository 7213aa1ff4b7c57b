from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import codec.data.shards as shards
from codec.data.shards import SCHEMA, SCHEMA_VERSION, SegmentRow, ShardWriter, audio_arrays, iter_segments, read_table


def row(i: int, n: int, text: str | None = "పాఠం", speaker: str | None = "spk") -> SegmentRow:
    audio = (np.arange(n, dtype=np.int64) * (i + 1) % 65536 - 32768).astype(np.int16)
    return SegmentRow(
        id=f"u{i:03d}-000",
        utterance_id=f"u{i:03d}",
        segment=0,
        num_segments=1,
        offset=160 * i,
        speaker=speaker,
        gender=None if i % 2 else "female",
        text=text,
        split="train",
        source_path=f"u{i:03d}.wav",
        corpus="c",
        format="folder",
        source_sample_rate=44100,
        sample_rate=16000,
        num_samples=n,
        audio=audio,
    )


def test_round_trip_with_row_groups_and_nulls(tmp_path):
    path = tmp_path / "train" / "part-00000.parquet"
    rows = [
        row(i, 100 + 37 * i, text=None if i == 3 else f"వాక్యం {i}", speaker=None if i == 4 else "spk") for i in range(10)
    ]
    with ShardWriter(path, row_group_rows=4) as writer:
        for r in rows:
            writer.add(r)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 10 and meta.num_row_groups == 3
    assert meta.row_group(0).column(SCHEMA.names.index("audio")).compression == "ZSTD"
    table = read_table(path)
    assert table.schema.metadata[b"telucodec.schema_version"] == str(SCHEMA_VERSION).encode()
    assert table.column("id").to_pylist() == [r.id for r in rows]
    assert table.column("text").to_pylist()[3] is None and table.column("speaker").to_pylist()[4] is None
    for got, want in zip(audio_arrays(table.column("audio")), rows):
        np.testing.assert_array_equal(got, want.audio)
    streamed = list(iter_segments(path, batch_rows=3))
    assert [s.id for s in streamed] == [r.id for r in rows]
    assert streamed[5].offset == rows[5].offset and streamed[5].gender == rows[5].gender
    np.testing.assert_array_equal(streamed[7].audio, rows[7].audio)


def test_empty_writer_gives_a_readable_empty_file(tmp_path):
    path = tmp_path / "valid" / "part-00001.parquet"
    with ShardWriter(path, row_group_rows=8):
        pass
    assert read_table(path).num_rows == 0 and read_table(path).schema.names == SCHEMA.names
    assert read_table([]).num_rows == 0 and read_table([], columns=["id"]).schema.names == ["id"]
    assert list(iter_segments([path, path])) == []


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "part.parquet"
    with pytest.raises(RuntimeError):
        with ShardWriter(path, row_group_rows=2) as writer:
            writer.add(row(0, 10))
            writer.add(row(1, 10))
            raise RuntimeError("crash mid-shard")
    assert list(tmp_path.iterdir()) == []


def test_failed_final_flush_leaves_nothing_behind(tmp_path):
    path = tmp_path / "part.parquet"
    writer = ShardWriter(path, row_group_rows=8)
    writer.add(replace(row(0, 10), gender=123))  # not a string: the flush at close fails
    with pytest.raises(AttributeError):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_audio_arrays_on_sliced_and_chunked_columns():
    pcm = [np.arange(k, dtype=np.int16) - 3 for k in (3, 0, 5, 2)]
    array = pa.array([p.tobytes() for p in pcm], pa.binary())
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(1)])
    for got, want in zip(audio_arrays(chunked), pcm):
        np.testing.assert_array_equal(got, want)
    assert [a.size for a in audio_arrays(array.slice(2, 2))] == [5, 2]


def test_schema_is_documented_and_matches_the_row_type():
    doc = shards.__doc__
    for field in SCHEMA:
        assert f"\n{field.name} " in doc, f"column {field.name} missing from the schema table"
