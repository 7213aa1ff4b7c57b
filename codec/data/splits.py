"""Deterministic, speaker-disjoint train/valid/test assignment.

Utterances are grouped by speaker (an utterance without a speaker is a group of its own).
Groups are ordered by a stable hash of their key (sha256, never Python's salted ``hash()``)
and valid, then test, take groups first-fit until their share of the total weight
(duration when every utterance states one, else utterance count) would pass the target
fraction; the rest is train. With three or more groups, valid and test (when their
fraction is > 0) are guaranteed at least one group each, so 12 speakers at 0.1/0.1 still
give a non-empty valid and test set.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping

from codec.data.corpora.base import Utterance

SPLITS = ("train", "valid", "test")


def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` that is the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def group_key(utt: Utterance) -> str:
    """The unit that must not straddle splits: the speaker, else the utterance itself."""
    return f"speaker:{utt.speaker}" if utt.speaker is not None else f"utterance:{utt.id}"


def assign_groups(weights: Mapping[str, float], valid: float, test: float) -> dict[str, str]:
    """Map each group key to ``"train"``, ``"valid"`` or ``"test"`` (see module docstring).

    ``weights``: group key -> non-negative size; ``valid``/``test``: target fractions of the total.
    """
    if not (0 <= valid and 0 <= test and valid + test < 1):
        raise ValueError(f"split fractions valid={valid} test={test} must be >= 0 and sum to < 1")
    order = sorted(weights, key=lambda k: (stable_hash(k), k))
    rank = {key: i for i, key in enumerate(order)}
    total = sum(weights.values())
    members: dict[str, list[str]] = {s: [] for s in SPLITS}
    assigned: dict[str, str] = {}
    for split, fraction in (("valid", valid), ("test", test)):
        target, filled = fraction * total, 0.0
        for key in order:
            if key not in assigned and filled + weights[key] <= target:
                assigned[key] = split
                members[split].append(key)
                filled += weights[key]
    for key in order:
        if key not in assigned:
            assigned[key] = "train"
            members["train"].append(key)
    if len(order) >= 3:
        for split, fraction in (("valid", valid), ("test", test)):
            if fraction > 0 and not members[split]:
                # Borrow the smallest group from a split that can spare one, train first.
                donor = next(s for s in ("train", "valid", "test") if s != split and len(members[s]) >= 2)
                key = min(members[donor], key=lambda k: (weights[k], rank[k]))
                members[donor].remove(key)
                members[split].append(key)
                assigned[key] = split
    return assigned


def assign_splits(utterances: Iterable[Utterance], valid: float, test: float) -> dict[str, str]:
    """Map each utterance id to its split; utterances of one speaker always share a split."""
    utterances = list(utterances)
    use_duration = bool(utterances) and all(u.duration is not None and u.duration >= 0 for u in utterances)
    weights: dict[str, float] = defaultdict(float)
    for u in utterances:
        # use_duration: every duration is set (the second test only narrows the type).
        weights[group_key(u)] += float(u.duration) if use_duration and u.duration is not None else 1.0
    groups = assign_groups(weights, valid, test)
    return {u.id: groups[group_key(u)] for u in utterances}
