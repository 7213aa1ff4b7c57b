"""OpenSLR 66 (crowd-sourced Telugu): ``line_index.tsv`` lines are ``<fileid>\\t<transcript>``.

File ids look like ``tef_02410_00000000``: ``tef``/``tem`` = Telugu female/male, the middle
number is the speaker. The wavs sit beside the tsv (or in ``wavs/``). The male and female
archives may be unpacked side by side: tsv files in the root and its direct subfolders are read.
"""

from __future__ import annotations

from pathlib import Path

from codec.data.corpora.base import CorpusError, Utterance

INDEX = "line_index.tsv"
_GENDER = {"f": "female", "m": "male"}


def detect(root: Path) -> bool:
    return bool(_index_files(root))


def read(root: Path) -> list[Utterance]:
    utterances = []
    for index in _index_files(root):
        folder = index.parent
        wav_dir = folder / "wavs" if (folder / "wavs").is_dir() else folder
        try:
            lines = index.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"{index}: cannot read: {exc}") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            file_id, _, text = line.partition("\t")
            file_id = file_id.strip()
            parts = file_id.split("_")
            if len(parts) != 3 or len(parts[0]) != 3:
                raise CorpusError(f"{index}:{lineno}: file id {file_id!r} is not like tef_02410_00000000")
            utterances.append(
                Utterance(
                    id=file_id,
                    path=wav_dir / f"{file_id}.wav",
                    speaker=parts[1],
                    gender=_GENDER.get(parts[0][-1]),
                    text=text.strip() or None,
                    meta={"index": str(index.relative_to(root))},
                )
            )
    return utterances


def _index_files(root: Path) -> list[Path]:
    candidates = [root / INDEX] + sorted(p / INDEX for p in root.iterdir() if p.is_dir())
    return [p for p in candidates if p.is_file()]
