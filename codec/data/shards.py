"""Parquet shards of prepared audio: schema, atomic writer, and the readers the loader uses.

Layout under the output folder::

    <out>/<split>/part-<shard:05d>.parquet   one file per split per shard job (possibly 0 rows)
    <out>/parts/part-<shard:05d>.json        that job's summary (rows, seconds, speakers, rejects)
    <out>/manifest.json                      written by the merge: files, rows, sha256, params

One row per utterance segment, rows sorted by ``id``. Schema version 1:

=====================  ===========  =========================================================
column                 type         meaning
=====================  ===========  =========================================================
id                     string       ``<utterance_id>-<segment:03d>``, unique in the dataset
utterance_id           string       id of the source utterance given by the corpus reader
segment                int32        0-based index of this piece within the source file
num_segments           int32        pieces the source file was cut into (max_seconds)
offset                 int64        first sample of the piece in the source file, at sample_rate
speaker                string?      speaker (or speaker group) id; null when unknown
gender                 string?      ``male`` / ``female`` / ``other``; null when unknown
text                   string?      transcript; null when unknown or the file was cut in pieces
split                  string       ``train`` / ``valid`` / ``test`` (same as the folder)
source_path            string       audio file path relative to the corpus root
corpus                 string       corpus folder name
format                 string       reader used: ``folder`` / ``ulca`` / ``slr66`` / ``commonvoice``
source_sample_rate     int32        Hz of the file before resampling
sample_rate            int32        Hz of ``audio``
num_samples            int32        samples in ``audio``
audio                  binary       mono 16-bit little-endian PCM, ``2 * num_samples`` bytes
=====================  ===========  =========================================================

``audio`` is binary rather than ``list<int16>``: it writes and reads several times faster
(one value per row instead of per sample) and turns into numpy without a copy
(:func:`audio_arrays`). Files are zstd-compressed, ``row_group_rows`` rows per row group.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codec.runtime.sharded import MANIFEST, AtomicParquetWriter, shard_file

SCHEMA_VERSION = 1
AUDIO_ENCODING = "pcm_s16le"

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("utterance_id", pa.string(), nullable=False),
        pa.field("segment", pa.int32(), nullable=False),
        pa.field("num_segments", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("speaker", pa.string()),
        pa.field("gender", pa.string()),
        pa.field("text", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("source_sample_rate", pa.int32(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("num_samples", pa.int32(), nullable=False),
        pa.field("audio", pa.binary(), nullable=False),
    ],
    metadata={"telucodec.schema_version": str(SCHEMA_VERSION), "telucodec.audio": AUDIO_ENCODING},
)
_DICTIONARY_COLUMNS = ["speaker", "gender", "split", "corpus", "format", "source_sample_rate", "sample_rate"]
_INT_DTYPES: dict[pa.DataType, np.dtype[np.signedinteger[Any]]] = {
    pa.int32(): np.dtype("<i4"),
    pa.int64(): np.dtype("<i8"),
}
_STATISTICS_COLUMNS = [name for name in SCHEMA.names if name not in ("audio", "text")]


@dataclass(frozen=True)
class SegmentRow:
    """One row of a shard; fields mirror :data:`SCHEMA` (``audio`` as int16 samples)."""

    id: str
    utterance_id: str
    segment: int
    num_segments: int
    offset: int
    speaker: str | None
    gender: str | None
    text: str | None
    split: str
    source_path: str
    corpus: str
    format: str
    source_sample_rate: int
    sample_rate: int
    num_samples: int
    audio: np.ndarray  # (num_samples,) int16


_ROW_FIELDS = [f.name for f in fields(SegmentRow)]
assert _ROW_FIELDS == SCHEMA.names, "SegmentRow and SCHEMA must list the same columns in order"


def shard_path(out_dir: str | Path, split: str, shard: int) -> Path:
    return shard_file(Path(out_dir) / split, shard)


class ShardWriter(AtomicParquetWriter[SegmentRow]):
    """Stream :class:`SegmentRow` s into one Parquet file, ``row_group_rows`` per row group.

    The file appears at ``path`` only when the writer closes without error (temp + rename);
    a writer that received no rows still writes a valid, empty file with the schema.
    """

    def __init__(self, path: str | Path, row_group_rows: int) -> None:
        super().__init__(
            path,
            SCHEMA,
            row_group_rows,
            compression="zstd",
            use_dictionary=_DICTIONARY_COLUMNS,
            write_statistics=_STATISTICS_COLUMNS,
        )
        self.samples = 0

    def add(self, row: SegmentRow) -> None:
        self.samples += row.num_samples
        super().add(row)

    def table(self, rows: list[SegmentRow]) -> pa.Table:
        arrays = [_column(SCHEMA.field(name).type, [getattr(r, name) for r in rows]) for name in _ROW_FIELDS]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _column(kind: pa.DataType, values: list[Any]) -> pa.Array:
    """A column straight from numpy buffers.

    ``pa.array(list)`` would do, but its first call imports pandas (~0.4 s per process),
    and the audio column needs no per-row ``bytes`` copy this way.
    """
    n = len(values)
    if pa.types.is_integer(kind):
        return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(np.asarray(values, dtype=_INT_DTYPES[kind]))])
    if kind == pa.binary():  # audio: int16 sample arrays
        chunks = [np.asarray(v, dtype="<i2") for v in values]
        data = np.concatenate(chunks).view(np.uint8) if chunks else np.empty(0, np.uint8)
        sizes = [c.nbytes for c in chunks]
        validity = None
    else:  # nullable UTF-8 strings
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        sizes = [len(e) for e in encoded]
        present = np.array([v is not None for v in values], dtype=bool)
        validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


# ---------------------------------------------------------------- readers for the training loader


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The merge step's ``manifest.json`` (raises FileNotFoundError before the merge ran)."""
    return json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))


def split_files(out_dir: str | Path, split: str) -> list[Path]:
    """The shard files of ``split`` listed in the manifest (so stale parts are never read)."""
    manifest = read_manifest(out_dir)
    return [Path(out_dir) / f["path"] for f in manifest["splits"][split]["files"]]


def read_table(paths: list[Path] | Path, columns: list[str] | None = None) -> pa.Table:
    """Rows of one or more shard files as one table (empty files and empty lists are fine)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(columns)
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])


def audio_arrays(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """The ``audio`` column as int16 numpy arrays, one per row, viewing Arrow's memory (no copy)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[np.ndarray] = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8)
        out.extend(data[a:b].view("<i2") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()))
    return out


def iter_segments(paths: list[Path] | Path, batch_rows: int = 256) -> Iterator[SegmentRow]:
    """Stream :class:`SegmentRow` s from shard files without loading whole files."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in paths:
        with pq.ParquetFile(path) as f:
            for batch in f.iter_batches(batch_size=batch_rows):
                table = pa.Table.from_batches([batch])
                audio = audio_arrays(table.column("audio"))
                plain = table.drop_columns(["audio"]).to_pylist()
                for values, pcm in zip(plain, audio):
                    yield SegmentRow(**values, audio=pcm)
