"""Token shards: a tokenized corpus as Parquet files, one row per utterance segment, and readers for training.

``data/tokens/<corpus>/<split>/part-<shard>.parquet``, zstd-compressed, rows sorted by id, ``row_group_rows``
rows per row group. Schema (version :data:`TOKEN_SCHEMA_VERSION`, also in each file's metadata with the
``model_id`` of the export that made the codes and the number of levels):

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
``codes_00`` ..           list<int16>      level ``l``'s ``F`` codes, one column per level
========================  ===============  =================================================================

One column per level, not one nested ``[L, F]`` column: a speech LM that trains on the first ``k`` levels
reads only those columns' pages from disk (Parquet projects columns), and each column decodes to one flat
int16 buffer with offsets shared by every level, so a row group becomes one ``[k, frames]`` array (one
``np.stack``) whose rows are views: no per-row decoding work (see ``benchmarks/tokenize_speed.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from codec.runtime.io import atomic_path

TOKEN_SCHEMA_VERSION = 1
MAX_CODEBOOK_SIZE = 2**15  # codes are int16
META_COLUMNS = ["id", "utterance_id", "speaker", "gender", "text", "split"]
_NUMBER_COLUMNS = [
    ("num_samples", pa.int64(), np.int64),
    ("sample_rate", pa.int32(), np.int32),
    ("frame_rate", pa.float32(), np.float32),
    ("num_frames", pa.int32(), np.int32),
    ("levels", pa.int16(), np.int16),
]


def level_column(level: int) -> str:
    return f"codes_{level:02d}"


def token_schema(levels: int, model_id: str) -> pa.Schema:
    """The schema of a token file with ``levels`` code columns, its metadata naming the model and the version."""
    fields = [pa.field(name, pa.string()) for name in META_COLUMNS]
    fields += [pa.field(name, kind, nullable=False) for name, kind, _ in _NUMBER_COLUMNS]
    fields.append(pa.field("model_id", pa.dictionary(pa.int32(), pa.string()), nullable=False))
    fields += [pa.field(level_column(level), pa.list_(pa.int16()), nullable=False) for level in range(levels)]
    metadata = {
        "telucodec.tokens.schema_version": str(TOKEN_SCHEMA_VERSION),
        "telucodec.model_id": model_id,
        "telucodec.levels": str(levels),
    }
    return pa.schema(fields, metadata=metadata)


@dataclass(frozen=True)
class TokenRow:
    """One tokenized segment: its metadata and ``codes [L, F]`` (any integer dtype, values < 2**15)."""

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


class TokenWriter:
    """Stream :class:`TokenRow` s into one Parquet file; it appears at ``path`` only when the writer closes without
    error (temp + rename). A writer that received no rows still writes a valid, empty file with the schema."""

    def __init__(self, path: str | Path, levels: int, model_id: str, row_group_rows: int) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
        self.path, self.levels, self.model_id, self.row_group_rows = Path(path), levels, model_id, row_group_rows
        self.schema = token_schema(levels, model_id)
        self.rows = self.frames = 0
        self._buffer: list[TokenRow] = []
        self._atomic = atomic_path(self.path)
        self._writer = pq.ParquetWriter(str(self._atomic.__enter__()), self.schema, compression="zstd")

    def add(self, row: TokenRow) -> None:
        if row.codes.ndim != 2 or row.codes.shape[0] != self.levels:
            raise ValueError(f"{row.id}: codes of shape {row.codes.shape}, expected [{self.levels}, frames]")
        self._buffer.append(row)
        self.rows += 1
        self.frames += int(row.codes.shape[1])
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
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
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema), row_group_size=self.row_group_rows)

    def close(self, error: BaseException | None = None) -> None:
        """Finish the file; with ``error`` set, discard it instead."""
        try:
            if error is None:
                self._flush()
            self._writer.close()
        except BaseException as exc:  # a failed flush must not be renamed into place
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._atomic.__exit__(
            None if error is None else type(error), error, None if error is None else error.__traceback__
        )

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(exc)


class TokenFileError(ValueError):
    """A file is not a token shard of this schema version."""


def file_info(path: str | Path) -> dict[str, Any]:
    """``{"levels", "model_id", "num_rows", "num_row_groups"}`` of a token file, from its footer alone."""
    meta = pq.read_metadata(path)
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    if kv.get("telucodec.tokens.schema_version") != str(TOKEN_SCHEMA_VERSION):
        raise TokenFileError(
            f"{path}: token schema version {kv.get('telucodec.tokens.schema_version')!r}, "
            f"this build reads {TOKEN_SCHEMA_VERSION}"
        )
    return {
        "levels": int(kv["telucodec.levels"]),
        "model_id": kv["telucodec.model_id"],
        "num_rows": meta.num_rows,
        "num_row_groups": meta.num_row_groups,
    }


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


def _stacked_codes(table: pa.Table, levels: list[int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The codes of a table's rows as one ``[len(levels), total frames]`` int16 array (one stack per table)
    and each row's ``(start, end)`` in it."""
    columns = [table.column(level_column(level)).combine_chunks() for level in levels]
    offsets = columns[0].offsets.to_numpy()
    stacked = np.stack([c.values.to_numpy(zero_copy_only=False) for c in columns])
    spans = (offsets - offsets[0]).tolist()
    return stacked, list(zip(spans[:-1], spans[1:]))


def _group_rows(
    f: pq.ParquetFile, group: int, levels: list[int], columns: Sequence[str], as_tensor: bool
) -> list[dict[str, Any]]:
    table = f.read_row_group(group, columns=[*columns, *(level_column(level) for level in levels)])
    stacked, spans = _stacked_codes(table, levels)
    codes: np.ndarray | torch.Tensor = torch.from_numpy(stacked.astype(np.int64)) if as_tensor else stacked
    meta = {name: table.column(name).to_pylist() for name in columns}
    return [{**{name: meta[name][i] for name in columns}, "codes": codes[:, a:b]} for i, (a, b) in enumerate(spans)]


def read_row_group(
    path: str | Path, group: int, levels: int | Sequence[int] | None = None, columns: Sequence[str] = ("id",)
) -> list[dict[str, Any]]:
    """Row group ``group`` of a token file: per row, the asked ``columns`` and ``codes`` (``[k, F]`` int16 views of
    one array)."""
    chosen = _select_levels(levels, file_info(path)["levels"])
    with pq.ParquetFile(path) as f:
        return _group_rows(f, group, chosen, columns, as_tensor=False)


def iter_tokens(
    paths: Sequence[str | Path], levels: int | Sequence[int] | None = None, columns: Sequence[str] = ("id",)
) -> Iterator[dict[str, Any]]:
    """Every row of ``paths`` in file and row order (plain pyarrow; see :func:`read_row_group`)."""
    for path in paths:
        chosen = _select_levels(levels, file_info(path)["levels"])
        with pq.ParquetFile(path) as f:
            for group in range(f.num_row_groups):
                yield from _group_rows(f, group, chosen, columns, as_tensor=False)


class TokenDataset(IterableDataset):
    """Token rows for a ``torch.utils.data.DataLoader``: ``{"id", ..., "codes": LongTensor [k, F]}`` (the rows of
    one row group are views of one tensor).

    ``levels``: every level (None), the first ``k`` (an int), or a list of levels. Each epoch
    (:meth:`set_epoch`) visits the row groups of ``paths`` in an order drawn from ``(seed, epoch)`` when
    ``shuffle`` (rows shuffled within a group too), then deals them out: to rank ``r`` of ``world_size`` the
    groups ``r, r + W, ...`` (``torch.distributed``'s rank and size when it is initialised, else 0 and 1), and
    within a rank to DataLoader worker ``w`` of ``n`` every ``n``-th of those. With ``drop_uneven`` every rank
    gets the same number of groups (``floor(groups / world_size)``), so DDP ranks step in lockstep.
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
        infos = [file_info(p) for p in self.paths]
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
                    files[path] = pq.ParquetFile(path)
                rows = _group_rows(files[path], group, self.levels, self.columns, as_tensor=True)
                if self.shuffle:
                    random.Random(f"{self.seed}:{self.epoch}:{path.name}:{group}").shuffle(rows)
                yield from rows
        finally:
            for f in files.values():
                f.close()


def collate_tokens(rows: list[dict[str, Any]], pad: int = -1) -> dict[str, Any]:
    """A batch of :class:`TokenDataset` rows: ``codes [B, k, F_max]`` padded with ``pad``, ``lengths [B]``,
    and the other fields as lists."""
    lengths = torch.tensor([row["codes"].shape[-1] for row in rows])
    codes = torch.full((len(rows), rows[0]["codes"].shape[0], int(lengths.max())), pad, dtype=torch.int64)
    for i, row in enumerate(rows):
        codes[i, :, : row["codes"].shape[-1]] = row["codes"]
    out: dict[str, Any] = {name: [row[name] for row in rows] for name in rows[0] if name != "codes"}
    return {**out, "codes": codes, "lengths": lengths}
