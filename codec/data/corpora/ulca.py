"""ULCA / Bhashini ``asr-corpus``: ``data.json`` is a list of records such as

``{"audioFilename": "a.wav", "text": "...", "gender": "male", "duration": 1.2,
"collectionSource": ["Name", "https://www.youtube.com/watch?v=...", "<channel url>"], "speaker": "..."}``

``speaker`` is optional. Without it the first URL in ``collectionSource`` (the source video)
is the speaker group, which keeps the clips of one recording in one split.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from codec.data.corpora.base import CorpusError, Utterance, normalize_gender
from codec.runtime.io import write_json_atomic

DATA = "data.json"
PARAMS = "params.json"


def detect(root: Path) -> bool:
    return (root / DATA).is_file()


def read(root: Path) -> list[Utterance]:
    try:
        records = json.loads((root / DATA).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{root / DATA}: cannot read ULCA metadata: {exc}") from None
    if isinstance(records, dict) and isinstance(records.get("data"), list):
        records = records["data"]
    if not isinstance(records, list):
        raise CorpusError(f"{root / DATA}: expected a list of records, got {type(records).__name__}")
    return [_utterance(root, i, rec) for i, rec in enumerate(records)]


def _utterance(root: Path, index: int, rec: Any) -> Utterance:
    name = rec.get("audioFilename") if isinstance(rec, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise CorpusError(f"{root / DATA}: record {index} has no audioFilename")
    speaker = rec.get("speaker") or rec.get("speakerId") or _source_url(rec.get("collectionSource"))
    duration = rec.get("duration")
    return Utterance(
        id=str(PurePosixPath(name).with_suffix("")),
        path=root / name,
        speaker=str(speaker) if speaker else None,
        gender=normalize_gender(rec.get("gender")),
        text=rec.get("text") if isinstance(rec.get("text"), str) else None,
        duration=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
        meta={k: v for k, v in rec.items() if k not in ("audioFilename", "text", "gender", "duration", "speaker")},
    )


def _source_url(source: Any) -> str | None:
    items = source if isinstance(source, list) else [source]
    return next((s for s in items if isinstance(s, str) and s.startswith(("http://", "https://"))), None)


def write_index(root: str | Path, utterances: list[Utterance], language: str = "te") -> None:
    """Write ``data.json`` + ``params.json`` for audio files already under ``root``.

    Paths are stored relative to ``root``; ``speaker`` is written when known, so
    :func:`read` gives back the same ids, speakers, genders, transcripts and durations.
    """
    root = Path(root)
    records = []
    for u in utterances:
        record: dict[str, Any] = {"audioFilename": Path(u.path).relative_to(root).as_posix(), **dict(u.meta)}
        record.update(
            {
                k: v
                for k, v in (("text", u.text), ("gender", u.gender), ("duration", u.duration), ("speaker", u.speaker))
                if v is not None
            }
        )
        records.append(record)
    write_json_atomic(root / PARAMS, {"datasetType": "asr-corpus", "languages": {"sourceLanguage": language}})
    write_json_atomic(root / DATA, records)
