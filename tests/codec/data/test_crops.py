import itertools

import numpy as np
import pytest
import torch

from codec.data.crops import CropBatchSampler, CropDataset, build_loader, fixed_crops, index_split
from codec.data.shards import iter_segments, split_files

SAMPLE_RATE = 16000  # the rate tests/codec/train/conftest.py writes the shards at


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_index_matches_the_rows(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    rows = list(iter_segments(split_files(synthetic_shards, "train")))
    assert index.num_rows == len(rows) == 48
    assert index.num_samples.tolist() == [r.num_samples for r in rows]
    dataset = CropDataset(index, 64, cached_row_groups=1)
    for r in (0, 5, 30, 47):
        assert np.array_equal(dataset.pcm(r), rows[r].audio)
    with pytest.raises(ValueError, match="8000 Hz"):
        index_split(synthetic_shards, "train", 8000)


def test_crops_are_the_keyed_samples_scaled_and_padded(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    dataset = CropDataset(index, 512)
    row = int(np.argmax(index.num_samples))
    crop = dataset[(row, 100)]
    assert crop.shape == (1, 512) and crop.dtype == torch.float32
    assert torch.equal(crop[0], torch.from_numpy(dataset.pcm(row)[100:612].astype(np.float32) / 32768))
    short = int(np.argmin(index.num_samples))
    n = int(index.num_samples[short])
    padded = CropDataset(index, n + 50)[(short, 0)]
    assert torch.all(padded[0, n:] == 0) and torch.any(padded[0, :n] != 0)


def test_stream_is_deterministic_and_resumable(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    make = lambda **kw: CropBatchSampler(index, 512, 4, seed=3, **kw)  # noqa: E731
    full = _take(make(), 40)  # several epochs
    assert full == _take(make(), 40)
    assert _take(make(start_batch=13), 27) == full[13:]
    assert _take(CropBatchSampler(index, 512, 4, seed=4), 5) != full[:5]
    per_epoch = make().batches_per_epoch
    assert full[:per_epoch] != full[per_epoch : 2 * per_epoch]  # reshuffled every epoch


def test_ranks_get_disjoint_equal_shares(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    samplers = [CropBatchSampler(index, 512, 2, seed=1, rank=r, world_size=3) for r in range(3)]
    epochs = [s.epoch_keys(0) for s in samplers]
    assert len({len(e) for e in epochs}) == 1 and len({s.batches_per_epoch for s in samplers}) == 1
    keys = [tuple(k) for e in epochs for k in e]
    assert len(keys) == len(set(keys))
    # Together the ranks see (almost) every crop of the epoch: only the remainder is dropped.
    total = int(samplers[0].crops_per_row.sum())
    assert total - len(keys) < 3 * 2


def test_long_rows_give_more_crops_and_short_rows_pad_or_skip(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    seg = 1024
    pad = CropBatchSampler(index, seg, 2, seed=0, short="pad")
    skip = CropBatchSampler(index, seg, 2, seed=0, short="skip")
    assert skip.skipped_rows == int((index.num_samples < seg).sum()) > 0 and pad.skipped_rows == 0
    keys = pad.epoch_keys(0)
    counts = np.bincount(keys[:, 0], minlength=index.num_rows)
    longest = int(np.argmax(index.num_samples))
    assert counts[longest] == index.num_samples[longest] // seg or keys.shape[0] < pad.crops_per_row.sum()
    assert np.all(keys[:, 1] + np.minimum(seg, index.num_samples[keys[:, 0]]) <= index.num_samples[keys[:, 0]])
    assert set(skip.epoch_keys(0)[:, 0].tolist()) <= set(np.flatnonzero(index.num_samples >= seg).tolist())


def test_locality_windows_keep_every_crop(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    plain = CropBatchSampler(index, 256, 4, seed=5)
    local = CropBatchSampler(index, 256, 4, seed=5, locality_groups=2)
    a, b = plain.epoch_keys(1), local.epoch_keys(1)
    # The same crops, reordered (each keeps its start); only the trimmed remainder may differ.
    dropped = int(plain.crops_per_row.sum()) - len(a)
    assert len(a) == len(b) and len(set(map(tuple, a)) & set(map(tuple, b))) >= len(a) - dropped

    def widest_span(keys):
        """Most distinct row groups between the first and last crop of any one row group."""
        groups = index.group[keys[:, 0]]
        spans = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        return max(len(np.unique(groups[s[0] : s[-1] + 1])) for s in spans)

    assert len(np.unique(index.group)) >= 6
    assert widest_span(b) <= 2  # a worker caching 2 decoded row groups reads each once per epoch
    assert widest_span(a) > 2


def test_loader_workers_deliver_the_same_batches(synthetic_shards):
    index = index_split(synthetic_shards, "train", SAMPLE_RATE)
    dataset = CropDataset(index, 512)

    def batches(workers):
        loader = build_loader(
            dataset,
            CropBatchSampler(index, 512, 4, seed=2, start_batch=3),
            num_workers=workers,
            prefetch_batches=2,
            pin_memory=False,
            seed=0,
        )
        return [b.clone() for b in itertools.islice(loader, 6)]

    before = torch.get_rng_state()
    serial, parallel = batches(0), batches(2)
    assert torch.equal(torch.get_rng_state(), before), "building and iterating the loader must not touch the RNG"
    assert all(b.shape == (4, 1, 512) for b in serial)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))


def test_fixed_validation_crops_are_bounded_and_stable(synthetic_shards):
    dataset = CropDataset(index_split(synthetic_shards, "valid", SAMPLE_RATE), 512)
    crops = fixed_crops(dataset, 5)
    assert crops.shape == (5, 1, 512)
    assert torch.equal(crops, fixed_crops(dataset, 5))
    assert fixed_crops(dataset, 10_000).shape[0] == sum(max(1, n // 512) for n in dataset.index.num_samples.tolist())
