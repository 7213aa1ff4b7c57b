import hashlib
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from codec.data.corpora.base import Utterance
from codec.data.splits import SPLITS, assign_groups, assign_splits, stable_hash


def corpus(speakers: int, per_speaker: int, prefix: str = "s") -> list[Utterance]:
    return [
        Utterance(id=f"{prefix}{s:03d}_{i:03d}", path=Path(f"{s}/{i}.wav"), speaker=f"{prefix}{s:03d}")
        for s in range(speakers)
        for i in range(per_speaker)
    ]


def speakers_by_split(utts, splits):
    out = defaultdict(set)
    for u in utts:
        out[splits[u.id]].add(u.speaker)
    return out


def test_stable_hash_is_sha256_based():
    assert stable_hash("abc") == int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "big")


def test_speaker_disjoint_and_fractions_with_many_speakers():
    utts = corpus(200, 5)
    splits = assign_splits(utts, valid=0.1, test=0.15)
    by_split = speakers_by_split(utts, splits)
    assert not (
        by_split["train"] & by_split["valid"]
        or by_split["train"] & by_split["test"]
        or by_split["valid"] & by_split["test"]
    )
    counts = Counter(splits.values())
    assert abs(counts["valid"] / len(utts) - 0.1) <= 0.01
    assert abs(counts["test"] / len(utts) - 0.15) <= 0.01


def test_twelve_speakers_still_give_valid_and_test():
    utts = corpus(12, 60)
    by_split = speakers_by_split(utts, assign_splits(utts, 0.1, 0.1))
    assert len(by_split["valid"]) >= 1 and len(by_split["test"]) >= 1 and len(by_split["train"]) >= 8
    assert sum(map(len, by_split.values())) == 12


def test_uneven_groups_keep_every_split_non_empty():
    groups = assign_groups({"a": 1.0, "b": 1.0, "c": 100.0}, valid=0.1, test=0.1)
    assert sorted(groups.values()) == sorted(SPLITS)
    assert groups["c"] == "train"


def test_two_speakers_or_zero_fractions_go_to_train():
    assert set(assign_groups({"a": 1.0, "b": 1.0}, 0.1, 0.1).values()) == {"train"}
    assert set(assign_groups({k: 1.0 for k in "abcdef"}, 0.0, 0.0).values()) == {"train"}


def test_without_speakers_each_utterance_is_its_own_group():
    utts = [Utterance(id=f"u{i:04d}", path=Path(f"u{i}.wav")) for i in range(1000)]
    counts = Counter(assign_splits(utts, 0.2, 0.1).values())
    assert abs(counts["valid"] - 200) <= 2 and abs(counts["test"] - 100) <= 2


def test_durations_weigh_speakers_when_every_utterance_has_one():
    # 20 speakers, one of them with most of the audio: by duration it cannot be valid/test.
    utts = [
        Utterance(id=f"s{s:02d}", path=Path("x.wav"), speaker=f"s{s:02d}", duration=100.0 if s == 7 else 1.0)
        for s in range(20)
    ]
    splits = assign_splits(utts, 0.1, 0.1)
    assert splits["s07"] == "train"
    seconds = Counter()
    for u in utts:
        seconds[splits[u.id]] += u.duration
    assert seconds["valid"] <= 0.1 * sum(seconds.values()) and seconds["valid"] > 0


def test_input_order_does_not_matter():
    utts = corpus(30, 3)
    shuffled = list(utts)
    random.Random(1).shuffle(shuffled)
    assert assign_splits(utts, 0.1, 0.1) == assign_splits(shuffled, 0.1, 0.1)


def test_independent_of_python_hash_seed():
    code = (
        "from pathlib import Path; from codec.data.corpora.base import Utterance; "
        "from codec.data.splits import assign_splits;"
        "u=[Utterance(id=f'u{i}', path=Path('x'), speaker=f's{i%40}') for i in range(400)];"
        "print(sorted(assign_splits(u,0.1,0.1).items()))"
    )
    root = Path(__file__).resolve().parents[3]
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and "valid" in outs.pop()


@pytest.mark.parametrize("valid,test", [(-0.1, 0.1), (0.5, 0.5), (0.9, 0.2)])
def test_bad_fractions(valid, test):
    with pytest.raises(ValueError):
        assign_groups({"a": 1.0}, valid, test)
