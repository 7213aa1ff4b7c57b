"""Sharded, resumable stages: the output layout, the parts, the worker pool and the Parquet writer that
``prepare`` (:mod:`codec.data.prepare`) and ``tokenize`` (:mod:`codec.tokens.corpus`) share.

A stage cuts its work into ``num_shards`` shards by a stable hash of each item's id, so every job plans the same
shards on every machine. A shard job writes its files, each through an :class:`AtomicParquetWriter` (a file
appears whole or not at all), then its *part* (:func:`write_part`): ``<out>/parts/part-<shard:05d>.json``, what the
merge needs of the shard, with the shard, the shard count, the schema version and the *fingerprint* of what the
shard was made from (settings, inputs and, where a stage counts it, the code: :func:`codec.runtime.io.code_digest`).
The merge reads every part (:func:`read_part`), checks it is of this run and writes ``<out>/manifest.json``.

A part whose fingerprint is this run's and whose listed files are intact (:func:`kept_part`) need not be made
again, so a killed run redoes exactly the shards it had not finished; :func:`remove_temp_files` removes the
temporary files a killed write left. :func:`pool_map` runs a stage's tasks in a pool of forked worker processes,
results in order.

Layout under ``<out>``: ``<folder>/part-<shard:05d>.parquet`` (:func:`shard_file`; ``<split>`` for ``prepare``,
``<corpus>/<split>`` for ``tokenize``), ``parts/part-<shard:05d>.json``, ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from codec.runtime.interrupts import ignore_in_worker
from codec.runtime.io import AtomicFile, file_sha256, write_json_atomic

PARTS = "parts"
MANIFEST = "manifest.json"
# Fields of every part besides the shard and what its stage keeps there: they tie the part to one run.
RUN_KEYS = ("num_shards", "fingerprint", "schema_version")

T = TypeVar("T")
R = TypeVar("R")
Row = TypeVar("Row")

# atomic_path's temporary files: ``.<name>.<mkstemp's random part>.tmp`` beside ``<name>``.
_TEMP = r"\.(?:{name})\.[A-Za-z0-9_]+\.tmp"
_PART_NAME = r"part-{shard}\.(?:parquet|json)"


# ---------------------------------------------------------------------------------------------- layout


def shard_file(folder: str | Path, shard: int, suffix: str = ".parquet") -> Path:
    """Shard ``shard``'s file in ``folder``: ``<folder>/part-<shard:05d><suffix>``."""
    return Path(folder) / f"part-{shard:05d}{suffix}"


def part_path(out_dir: str | Path, shard: int) -> Path:
    """Shard ``shard``'s part: ``<out_dir>/parts/part-<shard:05d>.json``."""
    return shard_file(Path(out_dir) / PARTS, shard, ".json")


def remove_temp_files(out_dir: str | Path, shard: int | None = None) -> list[Path]:
    """Remove the temporary files that killed writes left under ``out_dir``: those of shard ``shard``'s files and
    part, or with ``shard=None`` every shard file's, part's and the manifest's. Finished files are never touched
    (their names do not match). Returns what it removed."""
    part = _PART_NAME.format(shard=f"{shard:05d}" if shard is not None else r"\d{5}")
    names = part if shard is not None else f"{part}|{re.escape(MANIFEST)}"
    pattern = re.compile(_TEMP.format(name=names))
    out_dir = Path(out_dir)
    removed = []
    for path in sorted(out_dir.rglob(".*.tmp")) if out_dir.is_dir() else []:
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ----------------------------------------------------------------------------------------------- parts


def write_part(
    out_dir: str | Path, shard: int, num_shards: int, fingerprint: str, schema_version: int, content: Mapping[str, Any]
) -> dict[str, Any]:
    """Write shard ``shard``'s part (stable JSON, atomically): ``content`` and the fields that tie it to this run.
    Returns what it wrote."""
    part = {
        **content,
        "shard": shard,
        "num_shards": num_shards,
        "fingerprint": fingerprint,
        "schema_version": schema_version,
    }
    write_json_atomic(part_path(out_dir, shard), part)
    return part


def read_part(out_dir: str | Path, shard: int) -> dict[str, Any] | None:
    """Shard ``shard``'s part, or None when it is missing or unreadable."""
    try:
        part = json.loads(part_path(out_dir, shard).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return part if isinstance(part, dict) else None


def changed_file(out_dir: str | Path, part: Mapping[str, Any]) -> Path | None:
    """The first file the part lists (``files``: ``path`` under ``out_dir`` and ``sha256``) that is missing or
    differs from its digest; None when every one is intact."""
    for f in part.get("files", []):
        path = Path(out_dir) / f["path"]
        if not path.is_file() or file_sha256(path) != f["sha256"]:
            return path
    return None


def kept_part(out_dir: str | Path, shard: int, fingerprint: str) -> dict[str, Any] | None:
    """Shard ``shard``'s part when it is of the run ``fingerprint`` names and every file it lists is there,
    unchanged: the shard need not be made again."""
    part = read_part(out_dir, shard)
    if part is None or part.get("fingerprint") != fingerprint or changed_file(out_dir, part) is not None:
        return None
    return part


# ----------------------------------------------------------------------------------------- worker pool


@contextlib.contextmanager
def pool_map(fn: Callable[[T], R], items: Iterable[T], workers: int, depth: int | None = None) -> Iterator[Iterator[R]]:
    """``map(fn, items)`` in ``workers`` forked processes (Ctrl-C is the parent's to handle:
    :func:`codec.runtime.interrupts.ignore_in_worker`): results in input order, at most ``depth`` tasks in flight
    (None: every item at once, as ``Executor.map``). ``workers`` <= 1 runs ``fn`` in this process, with no pool at
    all. Leaving the block cancels the tasks not yet started and waits for the running ones."""
    with _worker_pool(workers) as pool, contextlib.closing(_ordered_map(fn, items, pool, depth)) as results:
        yield results


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A started process pool of ``workers`` (None for 1: run inline, no start-up at all)."""
    if workers <= 1:
        yield None
        return
    # fork starts workers in milliseconds (spawn would re-import numpy and torch in each); forking
    # before any Parquet writer exists keeps Arrow's threads out of the children.
    context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
    with ProcessPoolExecutor(workers, mp_context=context, initializer=ignore_in_worker) as pool:
        pool.submit(int).result()  # the fork context starts every worker on the first submit
        yield pool


def _ordered_map(
    fn: Callable[[T], R], items: Iterable[T], pool: ProcessPoolExecutor | None, depth: int | None
) -> Generator[R, None, None]:
    """``map(fn, items)`` on ``pool``, results in input order, at most ``depth`` tasks in flight."""
    if pool is None:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if depth is not None and len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


# -------------------------------------------------------------------------------------- Parquet writer


class AtomicParquetWriter(Generic[Row]):
    """Rows into one Parquet file, ``row_group_rows`` a row group, that appears at ``path`` only when the writer
    closes without error: it is written under a temporary name beside ``path`` and renamed into place. A failure
    (in the ``with`` block, the last flush or Arrow's close) removes the temporary file and leaves ``path`` as it
    was. A writer that received no rows still writes a valid, empty file with the schema.

    A subclass turns its buffered rows into a table (:meth:`table`); ``options`` go to ``pq.ParquetWriter``."""

    def __init__(self, path: str | Path, schema: pa.Schema, row_group_rows: int, **options: Any) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
        self.path, self.schema, self.row_group_rows = Path(path), schema, row_group_rows
        self.rows = 0
        self._buffer: list[Row] = []
        self._file = AtomicFile(self.path)
        try:
            self._writer = pq.ParquetWriter(str(self._file.tmp), schema, **options)
        except BaseException:
            self._file.discard()
            raise
        self._closed = False

    def table(self, rows: list[Row]) -> pa.Table:
        """The rows of one row group as a table of :attr:`schema`."""
        raise NotImplementedError

    def add(self, row: Row) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        self._writer.write_table(self.table(rows), row_group_size=self.row_group_rows)

    def close(self, error: BaseException | None = None) -> None:
        """Finish the file and put it in place; with ``error`` set, discard it instead (so does a failing flush
        or close, whose exception propagates). A second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if error is None:
                self._flush()
            self._writer.close()
            if error is None:
                self._file.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._writer.close()  # after a failed flush: let go of the file (a no-op once closed)
            raise
        finally:
            self._file.discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(exc)
