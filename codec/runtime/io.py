"""Small file helpers shared by every stage: atomic writes, JSON and digests."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

CODE_ROOT = Path(__file__).resolve().parents[1]  # the codec package


class AtomicFile:
    """A temporary file beside ``path`` (``.<name>.<random>.tmp``, created empty with the permissions a plain
    ``open()`` gives) that :meth:`commit` renames onto ``path`` and :meth:`discard` removes. For a writer that
    outlives one ``with`` block (``codec.runtime.sharded.AtomicParquetWriter``); :func:`atomic_path` is the
    block form."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod(0o666 & ~umask)

    def commit(self) -> None:
        """Put the temporary file in place of ``path``."""
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Remove the temporary file (nothing to do after :meth:`commit`)."""
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or exception leaves ``path`` as it was (old content or absent), never half-written.
    """
    target = AtomicFile(path)
    try:
        yield target.tmp
        target.commit()
    finally:
        target.discard()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as stable, human-readable JSON (sorted keys, UTF-8 kept readable)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv_atomic(path: str | Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` as UTF-8 CSV with a header of ``fields``, ``\\n`` line ends."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (files of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_digest(root: str | Path = CODE_ROOT, names: Iterable[str] | None = None) -> str:
    """sha256 over ``*.py`` files by path relative to ``root`` and content: every one under ``root``, or with
    ``names`` (folders and files relative to ``root``) those, name by name in the order given, a folder's in
    path order. What a stage's fingerprint says of the code its output depends on."""
    root = Path(root)
    h = hashlib.sha256()
    for name in [""] if names is None else names:
        base = root / name
        for path in sorted(base.rglob("*.py")) if base.is_dir() else [base]:
            h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
