import json
import os
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from codec.config.prepare import AudioOptions
from codec.data.audio import process_file
from codec.data.corpora import detect_format, read_corpus
from codec.data.corpora.base import CorpusError, Utterance, normalize_gender
from codec.data.corpora.ulca import write_index
from tests.conftest import SHARED_CORPUS

SR = 16000
NOISE = (np.random.default_rng(0).standard_normal(SR // 4) * 0.1).astype(np.float32)


def write_audio(path, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, NOISE, SR, format=fmt)
    return path


def test_folder_reader_recurses_and_ids_come_from_relative_paths(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "sub" / "b.flac")
    write_audio(tmp_path / "sub" / "deeper" / "c.OGG", "OGG")
    write_audio(tmp_path / "d.mp3", "MP3")
    write_audio(tmp_path / ".hidden" / "e.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "folder.wav").mkdir()  # listed, so that prepare rejects it with a reason
    assert detect_format(tmp_path) == "folder"
    utts = read_corpus(tmp_path)
    assert [u.id for u in utts] == ["a", "d", "folder", "sub/b", "sub/deeper/c"]
    assert all(u.speaker is None and u.text is None for u in utts)
    assert [u.id for u in utts if not u.path.is_file()] == ["folder"]
    mp3 = next(u for u in utts if u.id == "d")
    assert process_file(mp3.path, AudioOptions(sample_rate=SR, trim_silence=False, min_seconds=0.1)).source_rate == SR


def test_folder_reader_keeps_ids_unique(tmp_path):
    write_audio(tmp_path / "x.wav")
    write_audio(tmp_path / "x.flac")
    assert sorted(u.id for u in read_corpus(tmp_path, "folder")) == ["x.flac", "x.wav"]


def test_ulca_round_trip_with_speakers(tmp_path):
    utts = [
        Utterance(
            id=f"clip{i}",
            path=write_audio(tmp_path / f"clip{i}.wav"),
            speaker=f"spk{i % 2}",
            gender="female",
            text=f"వాక్యం {i}",
            duration=0.25,
        )
        for i in range(3)
    ]
    write_index(tmp_path, utts)
    assert detect_format(tmp_path) == "ulca"
    back = read_corpus(tmp_path)
    assert [(u.id, u.path, u.speaker, u.gender, u.text, u.duration) for u in back] == [
        (u.id, u.path, u.speaker, u.gender, u.text, u.duration) for u in utts
    ]
    assert json.loads((tmp_path / "params.json").read_text())["datasetType"] == "asr-corpus"


def test_ulca_without_speaker_groups_by_source_video(tmp_path):
    records = [
        {
            "audioFilename": "1_a.wav",
            "text": "ఒకటి",
            "gender": "male",
            "duration": 1.0,
            "collectionSource": ["Show", "https://www.youtube.com/watch?v=AAA", "https://www.youtube.com/channel/C"],
        },
        {
            "audioFilename": "2_a.wav",
            "text": "రెండు",
            "gender": "Female",
            "duration": 2.0,
            "collectionSource": ["Show", "https://www.youtube.com/watch?v=BBB", "https://www.youtube.com/channel/C"],
        },
        {"audioFilename": "3_a.wav", "text": "", "gender": "non-specified", "collectionSource": ["Show"]},
    ]
    (tmp_path / "data.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    utts = read_corpus(tmp_path, "ulca")
    assert [u.speaker for u in utts] == [
        "https://www.youtube.com/watch?v=AAA",
        "https://www.youtube.com/watch?v=BBB",
        None,
    ]
    assert [u.gender for u in utts] == ["male", "female", None]
    assert utts[0].meta["collectionSource"][0] == "Show" and utts[2].duration is None


def test_ulca_malformed_metadata_is_a_clear_error(tmp_path):
    (tmp_path / "data.json").write_text('[{"text": "no file name"}]')
    with pytest.raises(CorpusError, match="record 0 has no audioFilename"):
        read_corpus(tmp_path)
    (tmp_path / "data.json").write_text("{not json")
    with pytest.raises(CorpusError, match="cannot read ULCA"):
        read_corpus(tmp_path)


def test_slr66_reads_speaker_and_gender_from_file_ids(tmp_path):
    for folder, ids in {
        "te_in_female": ["tef_02410_00000000", "tef_02410_00000001"],
        "te_in_male": ["tem_05000_00000002"],
    }.items():
        for fid in ids:
            write_audio(tmp_path / folder / f"{fid}.wav")
        (tmp_path / folder / "line_index.tsv").write_text(
            "".join(f"{fid}\tవాక్యం {fid[-1]}\n" for fid in ids), encoding="utf-8"
        )
    assert detect_format(tmp_path) == "slr66"
    utts = read_corpus(tmp_path)
    assert [(u.id, u.speaker, u.gender, u.text) for u in utts] == [
        ("tef_02410_00000000", "02410", "female", "వాక్యం 0"),
        ("tef_02410_00000001", "02410", "female", "వాక్యం 1"),
        ("tem_05000_00000002", "05000", "male", "వాక్యం 2"),
    ]
    assert all(u.path.is_file() for u in utts)


def test_slr66_bad_file_id(tmp_path):
    (tmp_path / "line_index.tsv").write_text("not-an-id\ttext\n")
    with pytest.raises(CorpusError, match="not like tef_"):
        read_corpus(tmp_path)


def test_common_voice_reader(tmp_path):
    write_audio(tmp_path / "clips" / "common_voice_te_1.mp3", "MP3")
    write_audio(tmp_path / "clips" / "common_voice_te_2.mp3", "MP3")
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
    rows = [
        'abc\tcommon_voice_te_1.mp3\tఅతను "నమస్తే" అన్నాడు\t2\t0\ttwenties\tmale_masculine\t\tte\t\n',
        "def\tcommon_voice_te_2.mp3\tరెండవది\t2\t0\t\t\t\tte\t\n",
    ]
    (tmp_path / "validated.tsv").write_text(header + "".join(rows), encoding="utf-8")
    assert detect_format(tmp_path) == "commonvoice"
    utts = read_corpus(tmp_path)
    assert [(u.id, u.speaker, u.gender) for u in utts] == [
        ("common_voice_te_1", "abc", "male"),
        ("common_voice_te_2", "def", None),
    ]
    assert utts[0].text == 'అతను "నమస్తే" అన్నాడు' and utts[0].meta["age"] == "twenties"
    assert process_file(utts[0].path, AudioOptions(sample_rate=SR, trim_silence=False, min_seconds=0.1)).segments


@pytest.mark.parametrize(
    "value,expected", [("M", "male"), ("female_feminine", "female"), ("", None), (None, None), ("intersex", "other")]
)
def test_normalize_gender(value, expected):
    assert normalize_gender(value) == expected


def test_corpus_level_errors(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no utterances"):
        read_corpus(tmp_path)
    with pytest.raises(CorpusError, match="unknown corpus format"):
        read_corpus(tmp_path, "kaldi")
    (tmp_path / "data.json").write_text('[{"audioFilename": "a.wav"}, {"audioFilename": "a.flac"}]')
    with pytest.raises(CorpusError, match="more than once"):
        read_corpus(tmp_path)


@pytest.mark.skipif(not os.path.isdir(SHARED_CORPUS), reason="real ULCA corpus (chai-bisket-te) not present")
def test_real_ulca_corpus():
    utts = read_corpus(SHARED_CORPUS)
    assert len(utts) == 585 and detect_format(SHARED_CORPUS) == "ulca"
    assert all(u.path.is_file() and u.text and u.duration for u in utts)
    speakers = Counter(u.speaker for u in utts)
    assert all(s.startswith("https://www.youtube.com/watch?v=") for s in speakers)
    assert len(speakers) > 50  # one group per source video, not one per channel
    assert {u.gender for u in utts} == {"male", "female"}


def test_params_name_exactly_the_formats_there_are_readers_for():
    from typing import get_args

    from codec.config.prepare import CorpusFormat
    from codec.data.corpora import FORMATS

    assert set(get_args(CorpusFormat)) == {"auto", *FORMATS}
