"""The sharded stage runner's parts: the atomic Parquet writer, parts and their resume check, the temporary files
a killed write leaves, the ordered worker pool, and the one code digest."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codec.runtime.io import code_digest, write_json_atomic
from codec.runtime.sharded import (
    AtomicParquetWriter,
    changed_file,
    kept_part,
    part_path,
    pool_map,
    read_part,
    remove_temp_files,
    shard_file,
    write_part,
)

SCHEMA = pa.schema([pa.field("x", pa.int64(), nullable=False)])


class IntWriter(AtomicParquetWriter[int]):
    def __init__(self, path, row_group_rows: int = 2) -> None:
        super().__init__(path, SCHEMA, row_group_rows, compression="zstd")

    def table(self, rows: list[int]) -> pa.Table:
        if any(r < 0 for r in rows):
            raise ValueError("negative")
        return pa.table({"x": pa.array(rows, pa.int64())}, schema=SCHEMA)


def test_the_parquet_writer_puts_a_whole_file_in_place_only_on_success(tmp_path):
    path = tmp_path / "a" / "part-00000.parquet"
    with IntWriter(path) as writer:
        for x in range(5):
            writer.add(x)
    assert pq.read_table(path).column("x").to_pylist() == [0, 1, 2, 3, 4] and writer.rows == 5
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with IntWriter(tmp_path / "empty.parquet"):
        pass
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_the_parquet_writer_leaves_nothing_when_the_block_or_the_last_flush_fails(tmp_path):
    with pytest.raises(RuntimeError), IntWriter(tmp_path / "a.parquet") as writer:
        writer.add(1)
        raise RuntimeError("killed")
    writer = IntWriter(tmp_path / "b.parquet", row_group_rows=8)
    writer.add(-1)  # the flush at close fails
    with pytest.raises(ValueError, match="negative"):
        writer.close()
    writer.close()  # a second close does nothing
    assert list(tmp_path.iterdir()) == []


def test_a_part_is_kept_only_for_its_fingerprint_and_intact_files(tmp_path):
    data = shard_file(tmp_path / "train", 3)
    data.parent.mkdir()
    data.write_bytes(b"rows")
    files = [{"path": "train/part-00003.parquet", "sha256": hashlib.sha256(b"rows").hexdigest()}]
    part = write_part(tmp_path, 3, 4, "f1", 7, {"files": files})
    assert part_path(tmp_path, 3) == tmp_path / "parts" / "part-00003.json"
    assert (
        read_part(tmp_path, 3)
        == part
        == {"files": files, "shard": 3, "num_shards": 4, "fingerprint": "f1", "schema_version": 7}
    )
    assert kept_part(tmp_path, 3, "f1") == part and kept_part(tmp_path, 3, "f2") is None
    assert read_part(tmp_path, 2) is None and kept_part(tmp_path, 2, "f1") is None
    data.write_bytes(b"damaged")
    assert changed_file(tmp_path, part) == data and kept_part(tmp_path, 3, "f1") is None
    part_path(tmp_path, 3).write_text("{not json")
    assert read_part(tmp_path, 3) is None


def test_only_the_temporary_files_of_killed_writes_are_removed(tmp_path):
    left = [
        tmp_path / "train" / ".part-00001.parquet.k2j9x_0a.tmp",
        tmp_path / "parts" / ".part-00001.json.zz1y2x3w.tmp",
        tmp_path / "a" / "b" / ".part-00002.parquet.a8b7c6d5.tmp",
        tmp_path / ".manifest.json.q9w8e7r6.tmp",
    ]
    others = [tmp_path / "notes.tmp", tmp_path / "parts" / "part-00001.json.tmp", tmp_path / ".part-1.parquet.x.tmp"]
    for path in left + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert remove_temp_files(tmp_path, 1) == sorted(left[:2])
    assert remove_temp_files(tmp_path) == sorted(left[2:])
    assert all(p.exists() for p in others) and remove_temp_files(tmp_path / "none") == []


@pytest.mark.parametrize("workers, depth", [(1, 3), (2, 3), (2, None)])
def test_pool_map_gives_results_in_input_order(workers, depth):
    with pool_map(abs, range(0, -40, -1), workers, depth) as results:
        assert list(results) == list(range(40))


def test_the_code_digest_hashes_paths_and_bytes_all_or_the_named_in_order(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "b.py").write_bytes(b"B")
    (tmp_path / "pkg" / "a.py").write_bytes(b"A")
    (tmp_path / "pkg" / "notes.txt").write_bytes(b"not code")
    (tmp_path / "top.py").write_bytes(b"T")

    def sha(*chunks: bytes) -> str:
        return hashlib.sha256(b"".join(chunks)).hexdigest()

    everything = sha(b"pkg/a.py\0A\0", b"pkg/sub/b.py\0B\0", b"top.py\0T\0")
    assert code_digest(tmp_path) == everything
    assert code_digest(tmp_path, ["top.py", "pkg"]) == sha(b"top.py\0T\0", b"pkg/a.py\0A\0", b"pkg/sub/b.py\0B\0")
    write_json_atomic(tmp_path / "pkg" / "x.json", {})  # not a .py file: no change
    assert code_digest(tmp_path) == everything
