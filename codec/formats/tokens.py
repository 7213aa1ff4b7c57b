"""Token shards: a tokenized corpus as Parquet files, one row per utterance segment, and readers for training.

``data/tokens/<corpus>/<split>/part-<shard>.parquet``, zstd-compressed, rows sorted by id, ``row_group_rows``
rows per row group. Schema (version :data:`TOKEN_SCHEMA_VERSION`):

========================  ===============  =================================================================
column                    type             meaning
========================  ===============  =================================================================
``id``                    string           the segment's id (as in the audio shards: ``<utterance>-<NNN>``)
``utterance_id``          string           the source utterance
``speaker``, ``gender``,  string           the corpus's metadata (null when unknown)
``text``
``split``                 string           ``train`` / ``valid`` / ``test``
``num_samples``           int64            samples of the encoded audio (decoding gives exactly these back)
``sample_rate``           int32            of the codec (Hz)
``frame_rate``            float32          code frames per second
``num_frames``            int32            ``F = ceil(num_samples / hop)``
``levels``                int16            ``L``, quantizer levels in the row
``model_id``              string           the export's id (dictionary-encoded: one value per file)
``codes_00`` ..           list<int16>      level ``l``'s ``F`` codes, each in ``[0, K)``, one column per level
========================  ===============  =================================================================

and in each file's key-value metadata:

===================================  ====================================================================
key                                  value
===================================  ====================================================================
``telucodec.tokens.schema_version``  :data:`TOKEN_SCHEMA_VERSION` (files of another version are refused:
                                     tokenize again)
``telucodec.model_id``               the export that made the codes
``telucodec.levels``                 ``L``
``telucodec.codebook_size``          ``K`` (at most :data:`MAX_CODEBOOK_SIZE`): every code lies in ``[0, K)``
===================================  ====================================================================

One column per level, not one nested ``[L, F]`` column: a speech LM that trains on the first ``k`` levels
reads only those columns' pages from disk (Parquet projects columns), and each column decodes to one flat
int16 buffer, so a row group becomes one ``[k, frames]`` array (one ``np.stack``) whose rows are views: no
per-row decoding work (see ``benchmarks/tokenize_speed.py``).

The readers (:func:`file_info`, :func:`read_row_group`, :func:`iter_tokens`, :class:`TokenDataset`) refuse a
file that is not such a shard with :class:`TokenFileError`, its message starting with the file's path (and
naming the row where there is one), never with a bare pyarrow error or wrong rows:

- from the footer alone (:func:`file_info`): a file that is not Parquet or cannot be read, metadata keys that
  are missing or not integers, a column missing or of another type, row counts that do not add up, a row group
  of more than :data:`MAX_GROUP_ROWS` rows, a column chunk outside the file or declaring more than
  :data:`MAX_CHUNK_BYTES` decoded bytes or :data:`MAX_CHUNK_VALUES` values;
- per row group, before pyarrow reads it: its page headers, against the same bounds (pyarrow allocates what a
  page header declares before it finds the page shorter), so that reading a row group allocates a bounded
  multiple of those bounds per column, whatever the bytes;
- per row group, with whole-column numpy checks as it is read: a null row or a null code, a row whose code
  lists differ in length between levels or from its ``num_frames``, a code outside ``[0, K)``, a ``levels``
  value other than ``L``, a ``model_id`` value other than the metadata's;
- across files (:func:`iter_tokens`, :class:`TokenDataset`): files made by different models or with different
  codebook sizes.

Codes lie in ``[0, K)``, so :func:`collate_tokens` pads with ``-1`` (a value no code can take; a ``pad`` of 0 or
more is refused).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from codec.runtime.sharded import AtomicParquetWriter

TOKEN_SCHEMA_VERSION = 2
MAX_CODEBOOK_SIZE = 2**15  # codes are int16
# Bounds the readers check in a file's footer and in a row group's page headers before pyarrow reads it: what one
# row group may declare, so what reading it may allocate.
MAX_GROUP_ROWS = 1 << 20
MAX_CHUNK_BYTES = 1 << 28  # decoded bytes of one column in one row group
MAX_CHUNK_VALUES = 1 << 26  # values (codes) of one column in one row group
META_COLUMNS = ["id", "utterance_id", "speaker", "gender", "text", "split"]
_NUMBER_COLUMNS = [
    ("num_samples", pa.int64(), np.int64),
    ("sample_rate", pa.int32(), np.int32),
    ("frame_rate", pa.float32(), np.float32),
    ("num_frames", pa.int32(), np.int32),
    ("levels", pa.int16(), np.int16),
]
_VERSION_KEY, _MODEL_KEY, _LEVELS_KEY, _CODEBOOK_KEY = (
    "telucodec.tokens.schema_version",
    "telucodec.model_id",
    "telucodec.levels",
    "telucodec.codebook_size",
)
# Read with every row group whatever the caller asks for: the readers check them against the codes.
_CHECKED_COLUMNS = ("num_frames", "levels", "model_id")
_NON_NULL_COLUMNS = {name for name, _, _ in _NUMBER_COLUMNS} | {"model_id"}


def level_column(level: int) -> str:
    return f"codes_{level:02d}"


def token_schema(levels: int, model_id: str, codebook_size: int) -> pa.Schema:
    """The schema of a token file with ``levels`` code columns, its metadata naming the model, the codebook size
    and the version."""
    fields = [pa.field(name, pa.string()) for name in META_COLUMNS]
    fields += [pa.field(name, kind, nullable=False) for name, kind, _ in _NUMBER_COLUMNS]
    fields.append(pa.field("model_id", pa.dictionary(pa.int32(), pa.string()), nullable=False))
    fields += [pa.field(level_column(level), pa.list_(pa.int16()), nullable=False) for level in range(levels)]
    metadata = {
        _VERSION_KEY: str(TOKEN_SCHEMA_VERSION),
        _MODEL_KEY: model_id,
        _LEVELS_KEY: str(levels),
        _CODEBOOK_KEY: str(codebook_size),
    }
    return pa.schema(fields, metadata=metadata)


@dataclass(frozen=True)
class TokenRow:
    """One tokenized segment: its metadata and ``codes [L, F]`` (any integer dtype, values in ``[0, K)``)."""

    id: str
    utterance_id: str
    speaker: str | None
    gender: str | None
    text: str | None
    split: str
    num_samples: int
    sample_rate: int
    frame_rate: float
    codes: np.ndarray


class TokenWriter(AtomicParquetWriter[TokenRow]):
    """Stream :class:`TokenRow` s into one Parquet file; it appears at ``path`` only when the writer closes without
    error (temp + rename). A writer that received no rows still writes a valid, empty file with the schema.
    ``codebook_size`` is ``K``: a row with a code outside ``[0, K)`` is refused."""

    def __init__(
        self, path: str | Path, levels: int, model_id: str, row_group_rows: int, *, codebook_size: int
    ) -> None:
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        if not 1 <= codebook_size <= MAX_CODEBOOK_SIZE:
            raise ValueError(f"codebook_size must lie in 1..{MAX_CODEBOOK_SIZE} (int16 codes), got {codebook_size}")
        self.levels, self.model_id, self.codebook_size = levels, model_id, codebook_size
        self.frames = 0
        # Statistics only for the metadata columns: min / max codes help no reader, and they would lengthen every
        # page header and footer entry the readers check.
        super().__init__(
            path,
            token_schema(levels, model_id, codebook_size),
            row_group_rows,
            compression="zstd",
            write_statistics=[*META_COLUMNS, *(name for name, _, _ in _NUMBER_COLUMNS), "model_id"],
        )

    def add(self, row: TokenRow) -> None:
        if row.codes.ndim != 2 or row.codes.shape[0] != self.levels:
            raise ValueError(f"{row.id}: codes of shape {row.codes.shape}, expected [{self.levels}, frames]")
        if row.codes.size and (row.codes.min() < 0 or row.codes.max() >= self.codebook_size):
            raise ValueError(
                f"{row.id}: codes span {row.codes.min()}..{row.codes.max()}, outside [0, {self.codebook_size})"
            )
        self.frames += int(row.codes.shape[1])
        super().add(row)

    def table(self, rows: list[TokenRow]) -> pa.Table:
        arrays: list[pa.Array] = [pa.array([getattr(r, name) for r in rows], pa.string()) for name in META_COLUMNS]
        numbers = {
            "num_samples": [r.num_samples for r in rows],
            "sample_rate": [r.sample_rate for r in rows],
            "frame_rate": [r.frame_rate for r in rows],
            "num_frames": [r.codes.shape[1] for r in rows],
            "levels": [self.levels] * len(rows),
        }
        arrays += [pa.array(np.asarray(numbers[name], dtype=dtype), kind) for name, kind, dtype in _NUMBER_COLUMNS]
        arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(rows), np.int32)), [self.model_id]))
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum([r.codes.shape[1] for r in rows], out=offsets[1:])
        for level in range(self.levels):
            values = np.concatenate([r.codes[level] for r in rows]).astype(np.int16)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int16())))
        return pa.Table.from_arrays(arrays, schema=self.schema)


class TokenFileError(ValueError):
    """A file is not a token shard of this schema version (its message starts with the file's path)."""


def _unreadable(path: str | Path, what: str, exc: BaseException) -> TokenFileError:
    detail = str(exc).strip().splitlines()
    return TokenFileError(f"{path}: {what}: {type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": "))


def _metadata_int(path: str | Path, kv: dict[str, str], key: str, low: int, high: int) -> int:
    text = kv.get(key)
    if text is None:
        raise TokenFileError(f"{path}: metadata key {key!r} is missing")
    try:
        value = int(text)
    except ValueError:
        raise TokenFileError(f"{path}: metadata {key} = {text[:40]!r} is not an integer") from None
    if not low <= value <= high:
        raise TokenFileError(f"{path}: metadata {key} = {value} is outside {low}..{high}")
    return value


def _check_schema(path: str | Path, schema: pa.Schema, levels: int) -> None:
    """Every column a reader relies on is there, with its type."""
    expected: list[tuple[str, str, Any]] = [(name, "string", pa.types.is_string) for name in META_COLUMNS]
    expected += [(name, str(kind), kind.equals) for name, kind, _ in _NUMBER_COLUMNS]
    expected.append(
        (
            "model_id",
            "string (dictionary)",
            lambda t: pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type)),
        )
    )
    expected += [
        (level_column(level), "list<int16>", lambda t: pa.types.is_list(t) and t.value_type == pa.int16())
        for level in range(levels)
    ]
    for name, kind, fits in expected:
        index = schema.get_field_index(name)
        if index < 0:
            raise TokenFileError(f"{path}: column {name!r} is missing (a token file of {levels} levels has it)")
        if not fits(schema.field(index).type):
            raise TokenFileError(f"{path}: column {name!r} is {schema.field(index).type}, expected {kind}")


class _ThriftError(ValueError):
    """Bytes that are not the Thrift structure they should be."""


_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT, _UUID = range(1, 14)
_INTS = (_I16, _I32, _I64)


class _Thrift:
    """A reader of the Thrift compact protocol, as Parquet's footer and page headers use it, that keeps only the
    fields asked for. Every container's size is checked against the bytes left (each element takes one byte at
    least) and nesting is bounded, so the work and the memory are linear in the bytes."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _ThriftError("truncated")
        self.pos += 1
        return self.buf[self.pos - 1]

    def varint(self) -> int:
        buf, pos, result, shift = self.buf, self.pos, 0, 0
        while shift < 70:
            if pos >= len(buf):
                raise _ThriftError("truncated")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7
        raise _ThriftError("a varint longer than 10 bytes")

    def integer(self, kind: int) -> int:
        if kind not in _INTS:
            raise _ThriftError(f"an integer field of Thrift type {kind}")
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self, kind: int) -> bytes:
        if kind != _BINARY:
            raise _ThriftError(f"a binary field of Thrift type {kind}")
        n = self.varint()
        if n > len(self.buf) - self.pos:
            raise _ThriftError("truncated")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def list_header(self, kind: int, element: int | None = None) -> tuple[int, int]:
        """A list's header: its size and its elements' type (which must be ``element`` when given)."""
        if kind not in (_LIST, _SET):
            raise _ThriftError(f"a list field of Thrift type {kind}")
        head = self.byte()
        size = head >> 4
        if size == 15:
            size = self.varint()
        if size > len(self.buf) - self.pos:
            raise _ThriftError("a list longer than its bytes")
        if element is not None and head & 0x0F != element:
            raise _ThriftError(f"a list of Thrift type {head & 0x0F}, expected {element}")
        return size, head & 0x0F

    def fields(self, kind: int = _STRUCT, depth: int = 0) -> Iterator[tuple[int, int]]:
        """A struct's fields as ``(field id, type)``; the caller reads or skips each value before the next."""
        if kind != _STRUCT:
            raise _ThriftError(f"a struct field of Thrift type {kind}")
        if depth > 32:
            raise _ThriftError("nested too deep")
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return
            delta = head >> 4
            last = last + delta if delta else self.integer(_I16)
            yield last, head & 0x0F

    def skip(self, kind: int, depth: int = 0, in_container: bool = False) -> None:
        self.pos = _skip(self.buf, self.pos, kind, depth, in_container)


_WIDTHS = {_BYTE: 1, _DOUBLE: 8, _UUID: 16}


def _skip(buf: bytes, pos: int, kind: int, depth: int, in_container: bool = False) -> int:
    """The position after a value of Thrift compact type ``kind`` at ``pos`` (most of a footer is skipped: the
    loops are written out to stay cheap)."""
    end = len(buf)
    if kind in _INTS:
        stop = min(pos + 10, end)
        while pos < stop:
            pos += 1
            if buf[pos - 1] < 0x80:
                return pos
        raise _ThriftError("truncated" if stop == end else "a varint longer than 10 bytes")
    if kind == _BINARY:
        t = _Thrift(buf)
        t.pos = pos
        t.binary(kind)
        return t.pos
    if kind in (_BOOL_TRUE, _BOOL_FALSE) and not in_container:  # a bool field's value is its type
        return pos
    if kind in _WIDTHS or kind in (_BOOL_TRUE, _BOOL_FALSE):  # a bool in a container takes a byte
        pos += _WIDTHS.get(kind, 1)
        if pos > end:
            raise _ThriftError("truncated")
        return pos
    if depth > 32:
        raise _ThriftError("nested too deep")
    if kind in (_LIST, _SET, _MAP):
        t = _Thrift(buf)
        t.pos = pos
        if kind == _MAP:
            size = t.varint()
            if size and 2 * size > end - t.pos - 1:
                raise _ThriftError("a map longer than its bytes")
            types = t.byte() if size else 0
            kinds = [types >> 4, types & 0x0F] * size
        else:
            size, element = t.list_header(kind)
            kinds = [element] * size
        pos = t.pos
        for item in kinds:
            pos = _skip(buf, pos, item, depth + 1, True)
        return pos
    if kind == _STRUCT:
        while True:
            if pos >= end:
                raise _ThriftError("truncated")
            head = buf[pos]
            pos += 1
            if head == 0:
                return pos
            if head < 0x10:  # the field id follows as a varint
                pos = _skip(buf, pos, _I16, depth)
            pos = _skip(buf, pos, head & 0x0F, depth + 1)
    raise _ThriftError(f"unknown Thrift type {kind}")


_Ranges = dict[str, np.ndarray]  # per column, its chunks' byte ranges: int64 [row groups, leaves, (start, length)]


def _chunk_ranges(path: str | Path, columns: set[str]) -> _Ranges:
    """Per column of ``columns``, the byte ranges ``(start, length)`` of its chunks in every row group, parsed from the
    footer here (pyarrow aborts the process on some malformed column-chunk entries when Python asks for them), once
    each lies in the file's data, declares at most :data:`MAX_CHUNK_BYTES` decoded bytes and
    :data:`MAX_CHUNK_VALUES` values and each row group at most :data:`MAX_GROUP_ROWS` rows, adding up to the
    file's, and holds every column."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 12:
            raise _ThriftError("too short for Parquet")
        f.seek(size - 8)
        tail = f.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or not 0 < length <= size - 12:
            raise _ThriftError("no plain Parquet footer")
        f.seek(size - 8 - length)
        footer = f.read(length)
    # Parsing a footer here costs more than pyarrow's: the last files' ranges are kept, by the footer's digest
    # (and the bounds they were checked against).
    bounds = (MAX_GROUP_ROWS, MAX_CHUNK_BYTES, MAX_CHUNK_VALUES)
    key = (size, hashlib.blake2b(footer, digest_size=16).digest(), frozenset(columns), bounds)
    if key not in _RANGES:
        if len(_RANGES) >= 16:
            _RANGES.pop(next(iter(_RANGES)))
        _RANGES[key] = _parse_footer(_Thrift(footer), size - 8 - length, columns)
    return _RANGES[key]


_RANGES: dict[tuple[int, bytes, frozenset[str], tuple[int, int, int]], _Ranges] = {}


def _parse_footer(t: _Thrift, data_end: int, columns: set[str]) -> _Ranges:
    groups: list[dict[str, list[tuple[int, int]]]] = []
    num_rows = total = None
    for field, kind in t.fields():
        if field == 3:
            num_rows = t.integer(kind)
        elif field == 4:
            total = 0
            for _ in range(t.list_header(kind, _STRUCT)[0]):
                rows, ranges = _row_group(t, len(groups), columns, data_end)
                total += rows
                groups.append(ranges)
        else:
            t.skip(kind)
    if num_rows is None or total != num_rows:
        raise _ThriftError(f"the row groups hold {total} rows, the footer says {num_rows}")
    out: _Ranges = {}
    for name in columns:
        spans = [group.get(name, []) for group in groups]
        if any(not s or len(s) != len(spans[0]) for s in spans):
            raise _ThriftError(f"the row groups do not all hold column {name!r}")
        out[name] = np.array(spans, dtype=np.int64).reshape(len(groups), len(spans[0]) if spans else 1, 2)
    return out


def _row_group(
    t: _Thrift, group: int, columns: set[str], data_end: int
) -> tuple[int, dict[str, list[tuple[int, int]]]]:
    rows = None
    ranges: dict[str, list[tuple[int, int]]] = {}
    for field, kind in t.fields(depth=1):
        if field == 3:
            rows = t.integer(kind)
            if not 0 <= rows <= MAX_GROUP_ROWS:
                raise _ThriftError(f"row group {group} declares {rows} rows (at most {MAX_GROUP_ROWS})")
        elif field == 1:
            for _ in range(t.list_header(kind, _STRUCT)[0]):
                for chunk_field, chunk_kind in t.fields(depth=2):
                    if chunk_field == 1:
                        raise _ThriftError(f"row group {group} keeps a column in another file")
                    if chunk_field == 3:
                        name, start, length = _column_meta(t, chunk_kind, group, data_end)
                        if name in columns:
                            ranges.setdefault(name, []).append((start, length))
                    else:
                        t.skip(chunk_kind)
        else:
            t.skip(kind)
    if rows is None:
        raise _ThriftError(f"row group {group} has no row count")
    return rows, ranges


def _column_meta(t: _Thrift, kind: int, group: int, data_end: int) -> tuple[str, int, int]:
    """A column chunk's top-level column name and byte range, once its declared sizes are within the bounds."""
    found: dict[int, Any] = {}
    for field, field_kind in t.fields(kind, depth=3):
        if field == 3:
            found[3] = [t.binary(_BINARY) for _ in range(t.list_header(field_kind, _BINARY)[0])]
        elif field in (5, 6, 7, 9, 11):
            found[field] = t.integer(field_kind)
        else:
            t.skip(field_kind)
    if not found.get(3) or any(field not in found for field in (5, 6, 7, 9)):
        raise _ThriftError(f"row group {group}: a column chunk without its path, sizes or offset")
    name = found[3][0].decode("utf-8", "replace")
    values, decoded, compressed = found[5], found[6], found[7]
    # The chunk starts at its first page: the dictionary page when there is one (a chunk of no rows has no data
    # page: its data page offset is 0).
    offsets = [offset for offset in (found[9], found.get(11, 0)) if offset > 0]
    start = min(offsets) if offsets else 4 if compressed == 0 else 0
    if not (4 <= start and 0 <= compressed and start + compressed <= data_end):
        raise _ThriftError(
            f"row group {group}, column {name!r}: a chunk at {start} of {compressed} bytes, past the data"
        )
    if not (0 <= decoded <= MAX_CHUNK_BYTES and 0 <= values <= MAX_CHUNK_VALUES):
        raise _ThriftError(
            f"row group {group}, column {name!r}: a chunk of {decoded} decoded bytes and {values} values "
            f"(at most {MAX_CHUNK_BYTES} and {MAX_CHUNK_VALUES})"
        )
    return name, start, compressed


def _page_header(buf: bytes) -> tuple[int, int, int, int]:
    """A page header's (length, decoded bytes, stored bytes, values). Read once per page of every row group: its
    field loop is written out (no generator) to stay cheap."""
    t = _Thrift(buf)
    found: dict[int, int] = {}
    values = field = 0
    while True:
        head = t.byte()
        if head == 0:
            break
        field = field + (head >> 4) if head >> 4 else t.integer(_I16)
        kind = head & 0x0F
        if field == 2 or field == 3:
            found[field] = t.integer(kind)
        elif field in (5, 7, 8):  # data page, dictionary page, data page v2: num_values is their field 1
            for sub, sub_kind in t.fields(kind, depth=1):
                if sub == 1:
                    values += t.integer(sub_kind)
                else:
                    t.skip(sub_kind, depth=1)
        else:
            t.skip(kind)
    if 2 not in found or 3 not in found:
        raise _ThriftError("a page header without its sizes")
    return t.pos, found[2], found[3], values


def _check_pages(path: str | Path, ranges: dict[str, np.ndarray], group: int) -> None:
    """Walk the page headers of a row group's chunks before pyarrow reads them: pyarrow allocates what a page header
    declares (up to 2 GiB a page) before it finds the page shorter. Each chunk's pages must fill its range and
    declare at most :data:`MAX_CHUNK_BYTES` decoded bytes and :data:`MAX_CHUNK_VALUES` values in all."""
    with open(path, "rb") as f:
        for name, start, length in ((n, int(a), int(b)) for n, spans in ranges.items() for a, b in spans):
            pos, end, decoded, values = start, start + length, 0, 0
            while pos < end:
                want = min(end - pos, 512)
                while True:  # a page header, read in growing pieces (statistics can make it long)
                    f.seek(pos)
                    try:
                        used, page_decoded, page_stored, page_values = _page_header(f.read(want))
                        break
                    except _ThriftError as exc:
                        if str(exc) != "truncated" or want >= min(end - pos, 1 << 20):
                            raise _ThriftError(f"row group {group}, column {name!r}: page header: {exc}") from None
                        want = min(end - pos, want * 8, 1 << 20)
                if min(page_decoded, page_stored, page_values) < 0 or pos + used + page_stored > end:
                    raise _ThriftError(f"row group {group}, column {name!r}: a page past its chunk")
                decoded, values, pos = decoded + page_decoded, values + page_values, pos + used + page_stored
                if decoded > MAX_CHUNK_BYTES or values > MAX_CHUNK_VALUES:
                    raise _ThriftError(
                        f"row group {group}, column {name!r}: pages of more than {MAX_CHUNK_BYTES} decoded bytes or "
                        f"{MAX_CHUNK_VALUES} values"
                    )


@dataclass(frozen=True)
class _Footer:
    info: dict[str, Any]
    ranges: _Ranges


def _read_footer(path: str | Path) -> _Footer:
    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, "not a readable Parquet file", exc) from None
    kv = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
    version = kv.get(_VERSION_KEY)
    if version != str(TOKEN_SCHEMA_VERSION):
        raise TokenFileError(
            f"{path}: token schema version {version!r}, this build reads {TOKEN_SCHEMA_VERSION}: "
            "tokenize the corpus again (the tokenize stage)"
        )
    if _MODEL_KEY not in kv:
        raise TokenFileError(f"{path}: metadata key {_MODEL_KEY!r} is missing")
    levels = _metadata_int(path, kv, _LEVELS_KEY, 1, max(1, len(schema)))
    codebook_size = _metadata_int(path, kv, _CODEBOOK_KEY, 1, MAX_CODEBOOK_SIZE)
    _check_schema(path, schema, levels)
    try:
        ranges = _chunk_ranges(path, set(schema.names))
    except OSError as exc:
        raise _unreadable(path, "unreadable footer", exc) from None
    except _ThriftError as exc:
        raise TokenFileError(f"{path}: footer: {exc}") from None
    if any(len(spans) != meta.num_row_groups for spans in ranges.values()):
        raise TokenFileError(f"{path}: footer: {meta.num_row_groups} row groups, the chunks say otherwise")
    info = {
        "levels": levels,
        "model_id": kv[_MODEL_KEY],
        "codebook_size": codebook_size,
        "num_rows": meta.num_rows,
        "num_row_groups": meta.num_row_groups,
    }
    return _Footer(info, ranges)


def file_info(path: str | Path) -> dict[str, Any]:
    """``{"levels", "model_id", "codebook_size", "num_rows", "num_row_groups"}`` of a token file, from its footer
    alone, which it checks (see the module docstring): :class:`TokenFileError` when it is not a token file of this
    schema version."""
    return _read_footer(path).info


def _same_model(paths: Sequence[str | Path], infos: Sequence[dict[str, Any]]) -> None:
    """Files read together must come from one model and one codebook size."""
    for path, info in zip(paths[1:], infos[1:]):
        for key in ("model_id", "codebook_size"):
            if info[key] != infos[0][key]:
                raise TokenFileError(
                    f"{path}: {key} {info[key]!r}, but {paths[0]} has {infos[0][key]!r}: files of different models "
                    "cannot be read together"
                )


def _select_levels(levels: int | Sequence[int] | None, available: int) -> list[int]:
    """``None``: every level; an int ``k``: the first ``k``; a sequence: those levels, in that order."""
    if levels is None:
        chosen = list(range(available))
    elif isinstance(levels, int):
        if not 1 <= levels <= available:
            raise ValueError(f"levels must lie in 1..{available}, got {levels}")
        chosen = list(range(levels))
    else:
        chosen = [int(level) for level in levels]
    if not chosen or any(not 0 <= level < available for level in chosen):
        raise ValueError(f"levels {levels} are not among the file's 0..{available - 1}")
    return chosen


def _open(path: str | Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except MemoryError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # a column name that is not UTF-8
        raise _unreadable(path, "not a readable Parquet file", exc) from None


def _bad_row(f: pq.ParquetFile, path: str | Path, group: int, table: pa.Table, row: int, what: str) -> TokenFileError:
    """The error for row ``row`` of row group ``group``, naming it by its index in the file and its id (when the
    reader read the ids)."""
    index = sum(f.metadata.row_group(g).num_rows for g in range(group)) + row
    name = f" ({table.column('id')[row].as_py()!r})" if "id" in table.column_names else ""
    return TokenFileError(f"{path}: row {index}{name}, in row group {group}: {what}")


def _stacked_codes(
    f: pq.ParquetFile, path: str | Path, info: dict[str, Any], group: int, table: pa.Table, levels: list[int]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The codes of a row group's rows as one ``[len(levels), total frames]`` int16 array (one stack per group)
    and each row's ``(start, end)`` in it, once every level's list lengths equal ``num_frames``, nothing is null
    and every code lies in ``[0, K)``."""
    frames = table.column("num_frames").to_numpy()
    values = []
    for level in levels:
        name = level_column(level)
        column = table.column(name).combine_chunks()
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise _bad_row(f, path, group, table, row, f"{name} is null")
        offsets = column.offsets.to_numpy()
        lengths = np.diff(offsets)
        if not np.array_equal(lengths, frames):
            row = int(np.flatnonzero(lengths != frames)[0])
            raise _bad_row(
                f, path, group, table, row, f"{name} holds {lengths[row]} codes, its num_frames is {frames[row]}"
            )
        flat = column.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        if flat.null_count:
            at = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
            row = int(np.searchsorted(offsets - offsets[0], at, side="right")) - 1
            raise _bad_row(f, path, group, table, row, f"{name} holds a null code")
        values.append(flat.to_numpy())
    stacked = np.stack(values)
    size = info["codebook_size"]
    # Negative int16 codes read as uint16 are >= 2**15 >= K: one pass finds codes outside [0, K).
    if stacked.size and int(stacked.view(np.uint16).max()) >= size:
        level, at = (int(i[0]) for i in np.nonzero((stacked < 0) | (stacked >= size)))
        row = int(np.searchsorted(np.cumsum(frames, dtype=np.int64), at, side="right"))
        raise _bad_row(
            f,
            path,
            group,
            table,
            row,
            f"{level_column(levels[level])} holds code {stacked[level, at]}, outside [0, {size})",
        )
    spans = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(frames, out=spans[1:])
    bounds = spans.tolist()
    return stacked, list(zip(bounds[:-1], bounds[1:]))


def _check_group(f: pq.ParquetFile, path: str | Path, info: dict[str, Any], group: int, table: pa.Table) -> None:
    """The per-row columns that must agree with the file: no nulls, ``levels`` is ``L``, ``model_id`` the
    metadata's."""
    for name in table.column_names:
        if name in _NON_NULL_COLUMNS and table.column(name).null_count:
            row = int(np.flatnonzero(table.column(name).is_null().to_numpy())[0])
            raise _bad_row(f, path, group, table, row, f"{name} is null")
    levels = table.column("levels").to_numpy()
    if (levels != info["levels"]).any():
        row = int(np.flatnonzero(levels != info["levels"])[0])
        raise _bad_row(
            f, path, group, table, row, f"levels is {levels[row]}, the file's metadata says {info['levels']}"
        )
    model = table.column("model_id")
    if table.num_rows and pc.unique(model).to_pylist() != [info["model_id"]]:
        plain = model.cast(pa.string()) if pa.types.is_dictionary(model.type) else model
        row = int(np.flatnonzero(pc.not_equal(plain, info["model_id"]).to_numpy())[0])
        raise _bad_row(
            f,
            path,
            group,
            table,
            row,
            f"model_id is {plain[row].as_py()!r}, the file's metadata says {info['model_id']!r}",
        )


def _group_rows(
    f: pq.ParquetFile,
    path: str | Path,
    footer: _Footer,
    group: int,
    levels: list[int],
    columns: Sequence[str],
    as_tensor: bool,
) -> list[dict[str, Any]]:
    info = footer.info
    names = list(dict.fromkeys([*columns, *_CHECKED_COLUMNS, *(level_column(level) for level in levels)]))
    missing = [name for name in columns if name not in footer.ranges]
    if missing:
        raise TokenFileError(f"{path}: no column {missing[0]!r}")
    try:
        _check_pages(path, {name: footer.ranges[name][group] for name in names}, group)
    except OSError as exc:
        raise _unreadable(path, f"row group {group} cannot be read", exc) from None
    except _ThriftError as exc:
        raise TokenFileError(f"{path}: {exc}") from None
    try:
        table = f.read_row_group(group, columns=names)
        # pyarrow does not check everything it decodes (a dictionary index past the dictionary, a string that is
        # not UTF-8): a full validation does, in C++, without touching the codes' values.
        table.validate(full=True)
    except MemoryError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, f"row group {group} cannot be read", exc) from None
    _check_group(f, path, info, group, table)
    stacked, spans = _stacked_codes(f, path, info, group, table, levels)
    codes: np.ndarray | torch.Tensor = torch.from_numpy(stacked.astype(np.int64)) if as_tensor else stacked
    try:
        meta = {name: table.column(name).to_pylist() for name in columns}
    except UnicodeDecodeError as exc:
        raise _unreadable(path, f"row group {group} holds a string that is not UTF-8", exc) from None
    return [{**{name: meta[name][i] for name in columns}, "codes": codes[:, a:b]} for i, (a, b) in enumerate(spans)]


def read_row_group(
    path: str | Path, group: int, levels: int | Sequence[int] | None = None, columns: Sequence[str] = ("id",)
) -> list[dict[str, Any]]:
    """Row group ``group`` of a token file: per row, the asked ``columns`` and ``codes`` (``[k, F]`` int16 views of
    one array)."""
    footer = _read_footer(path)
    chosen = _select_levels(levels, footer.info["levels"])
    if not 0 <= group < footer.info["num_row_groups"]:
        raise IndexError(f"{path}: row group {group} is outside 0..{footer.info['num_row_groups'] - 1}")
    with _open(path) as f:
        return _group_rows(f, path, footer, group, chosen, columns, as_tensor=False)


def iter_tokens(
    paths: Sequence[str | Path], levels: int | Sequence[int] | None = None, columns: Sequence[str] = ("id",)
) -> Iterator[dict[str, Any]]:
    """Every row of ``paths`` in file and row order (plain pyarrow; see :func:`read_row_group`). Every file's footer
    is checked before the first row: all must come from one model."""
    footers = [_read_footer(path) for path in paths]
    _same_model(paths, [footer.info for footer in footers])
    for path, footer in zip(paths, footers):
        chosen = _select_levels(levels, footer.info["levels"])
        with _open(path) as f:
            for group in range(footer.info["num_row_groups"]):
                yield from _group_rows(f, path, footer, group, chosen, columns, as_tensor=False)


class TokenDataset(IterableDataset):
    """Token rows for a ``torch.utils.data.DataLoader``: ``{"id", ..., "codes": LongTensor [k, F]}`` (the rows of
    one row group are views of one tensor; codes in ``[0, K)``).

    ``levels``: every level (None), the first ``k`` (an int), or a list of levels. Each epoch
    (:meth:`set_epoch`) visits the row groups of ``paths`` in an order drawn from ``(seed, epoch)`` when
    ``shuffle`` (rows shuffled within a group too), then deals them out: to rank ``r`` of ``world_size`` the
    groups ``r, r + W, ...`` (``torch.distributed``'s rank and size when it is initialised, else 0 and 1), and
    within a rank to DataLoader worker ``w`` of ``n`` every ``n``-th of those. With ``drop_uneven`` every rank
    gets the same number of groups (``floor(groups / world_size)``), so DDP ranks step in lockstep.
    The files' footers are checked when it is made (all of one model), each row group as it is read
    (:class:`TokenFileError`).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        levels: int | Sequence[int] | None = None,
        *,
        columns: Sequence[str] = ("id",),
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = True,
    ):
        self.paths = [Path(p) for p in paths]
        footers = [_read_footer(p) for p in self.paths]
        infos = [footer.info for footer in footers]
        _same_model(self.paths, infos)
        self.footers = dict(zip(self.paths, footers))
        available = min((i["levels"] for i in infos), default=0)
        self.levels = _select_levels(levels, available)
        self.groups = [(p, g) for p, info in zip(self.paths, infos) for g in range(info["num_row_groups"])]
        self.columns, self.shuffle, self.seed, self.epoch = list(columns), shuffle, seed, 0
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        self.world_size = (
            world_size if world_size is not None else (torch.distributed.get_world_size() if distributed else 1)
        )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside 0..{self.world_size - 1}")
        self.drop_uneven = drop_uneven

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rank_groups(self) -> list[tuple[Path, int]]:
        """This rank's row groups for the current epoch, in the order it reads them."""
        order = list(self.groups)
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        if self.drop_uneven:
            order = order[: len(order) // self.world_size * self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        groups = self.rank_groups()
        worker = get_worker_info()
        if worker is not None:
            groups = groups[worker.id :: worker.num_workers]
        files: dict[Path, pq.ParquetFile] = {}
        try:
            for path, group in groups:
                if path not in files:
                    files[path] = _open(path)
                rows = _group_rows(files[path], path, self.footers[path], group, self.levels, self.columns, True)
                if self.shuffle:
                    random.Random(f"{self.seed}:{self.epoch}:{path.name}:{group}").shuffle(rows)
                yield from rows
        finally:
            for f in files.values():
                f.close()


def collate_tokens(rows: list[dict[str, Any]], pad: int = -1) -> dict[str, Any]:
    """A batch of :class:`TokenDataset` rows: ``codes [B, k, F_max]`` padded with ``pad``, ``lengths [B]``,
    and the other fields as lists. Codes lie in ``[0, K)``, so the default ``-1`` is never a code; a ``pad`` of 0
    or more could be one and is refused."""
    if pad >= 0:
        raise ValueError(f"pad {pad} could be a code (codes lie in [0, K)): pad with a negative value")
    if not rows:
        raise ValueError("collate_tokens needs at least one row")
    lengths = torch.tensor([row["codes"].shape[-1] for row in rows])
    codes = torch.full((len(rows), rows[0]["codes"].shape[0], int(lengths.max())), pad, dtype=torch.int64)
    for i, row in enumerate(rows):
        codes[i, :, : row["codes"].shape[-1]] = row["codes"]
    out: dict[str, Any] = {name: [row[name] for row in rows] for name in rows[0] if name != "codes"}
    return {**out, "codes": codes, "lengths": lengths}
