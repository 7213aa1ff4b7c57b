"""Random fixed-length crops streamed from the Parquet shards, deterministic for any worker count.

All randomness lives in :class:`CropBatchSampler`: batch ``b`` of the stream is a pure function
of ``(seed, epoch, rank, world_size)``, listing ``(row, start_sample)`` keys. The dataset only
cuts the keyed crop out of the decoded PCM, so which DataLoader worker serves a batch, how many
workers there are, and where a resumed run restarts (``start_batch``) never change the data.

Ranks get disjoint slices of every epoch's shuffled keys (a distributed sampler over rows);
every rank yields the same number of batches, as DDP needs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from codec.data.shards import audio_arrays, split_files

PCM_SCALE = 1.0 / 32768.0  # int16 -> [-1, 1)


@dataclass(frozen=True)
class SplitIndex:
    """Where every row of a split lives, read from Parquet metadata and two small columns.

    ``files[file_of[g]]`` holds row group ``group_of_file[g]``; row ``r`` is row ``row_in_group[r]``
    of global row group ``group[r]`` and has ``num_samples[r]`` samples.
    """

    files: tuple[Path, ...]
    file_of: np.ndarray  # [G] int: file index of each global row group
    group_of_file: np.ndarray  # [G] int: row-group index inside its file
    group: np.ndarray  # [R] int: global row group of each row
    row_in_group: np.ndarray  # [R] int
    num_samples: np.ndarray  # [R] int

    @property
    def num_rows(self) -> int:
        return len(self.num_samples)


def index_split(shards: str | Path, split: str, sample_rate: int) -> SplitIndex:
    """Index ``split`` of a prepared shard folder; every row must be at ``sample_rate`` Hz."""
    files = tuple(split_files(shards, split))
    file_of: list[int] = []
    group_of_file: list[int] = []
    group: list[int] = []
    row_in_group: list[int] = []
    num_samples: list[int] = []
    for fi, path in enumerate(files):
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            table = pf.read_row_group(g, columns=["num_samples", "sample_rate"])
            rates = set(table.column("sample_rate").to_pylist())
            if rates - {sample_rate}:
                raise ValueError(f"{path}: rows at {sorted(rates)} Hz, the codec runs at {sample_rate} Hz")
            n = table.num_rows
            group.extend([len(file_of)] * n)
            row_in_group.extend(range(n))
            num_samples.extend(table.column("num_samples").to_pylist())
            file_of.append(fi)
            group_of_file.append(g)
    as_int = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return SplitIndex(
        files, as_int(file_of), as_int(group_of_file), as_int(group), as_int(row_in_group), as_int(num_samples)
    )


class CropDataset(Dataset):
    """``dataset[(row, start)]`` -> float32 crop ``[1, segment_samples]`` in [-1, 1), zero-padded at the end.

    Row groups are decoded on first use and kept: all of them when ``cached_row_groups == 0``,
    else the most recently used ``cached_row_groups`` (per DataLoader worker).
    """

    def __init__(self, index: SplitIndex, segment_samples: int, cached_row_groups: int = 0):
        self.index = index
        self.segment_samples = int(segment_samples)
        self.cached_row_groups = int(cached_row_groups)
        self._cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return self.index.num_rows

    def _row_group(self, g: int) -> list[np.ndarray]:
        rows = self._cache.get(g)
        if rows is None:
            path = self.index.files[self.index.file_of[g]]
            table = pq.ParquetFile(path).read_row_group(int(self.index.group_of_file[g]), columns=["audio"])
            rows = audio_arrays(table.column("audio"))
            self._cache[g] = rows
            if self.cached_row_groups and len(self._cache) > self.cached_row_groups:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(g)
        return rows

    def pcm(self, row: int) -> np.ndarray:
        """The int16 samples of ``row``."""
        return self._row_group(int(self.index.group[row]))[int(self.index.row_in_group[row])]

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        row, start = key
        pcm = self.pcm(row)[start : start + self.segment_samples]
        out = np.zeros((1, self.segment_samples), dtype=np.float32)
        np.multiply(pcm, PCM_SCALE, out=out[0, : len(pcm)], dtype=np.float32, casting="unsafe")
        return torch.from_numpy(out)


class CropBatchSampler:
    """Endless stream of batches of ``(row, start)`` keys for one rank; start anywhere with ``start_batch``.

    Epoch ``e``: each usable row contributes ``max(1, num_samples // segment)`` crops (so long
    utterances are seen in proportion to their length) at uniform random starts; the crops are
    shuffled by ``numpy.random.default_rng([seed, e])`` (the same on every rank), trimmed to a
    multiple of ``world_size * batch_size`` and dealt round-robin to the ranks.

    ``locality_groups > 0`` shuffles within windows of that many row groups (the windows in random
    order), so a worker that caches that many decoded row groups reads each one about once per epoch.
    """

    def __init__(
        self,
        index: SplitIndex,
        segment_samples: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        short: Literal["pad", "skip"] = "pad",
        locality_groups: int = 0,
        start_batch: int = 0,
    ):
        self.index = index
        self.segment = int(segment_samples)
        self.batch_size = int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.locality_groups = int(locality_groups)
        self.start_batch = int(start_batch)
        lengths = index.num_samples
        usable = lengths >= self.segment if short == "skip" else lengths > 0
        self.rows = np.flatnonzero(usable)
        self.skipped_rows = int(index.num_rows - len(self.rows))
        self.crops_per_row = np.maximum(1, lengths[self.rows] // self.segment)
        per_rank = int(self.crops_per_row.sum()) // (self.world_size * self.batch_size) * self.batch_size
        self.batches_per_epoch = per_rank // self.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the split yields {int(self.crops_per_row.sum())} crops of {self.segment} samples: "
                f"fewer than one batch of {self.batch_size} per rank for {self.world_size} rank(s)"
            )

    def epoch_keys(self, epoch: int) -> np.ndarray:
        """``[batches_per_epoch * batch_size, 2]`` int64 ``(row, start)`` keys of this rank for ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        rows = np.repeat(self.rows, self.crops_per_row)
        room = np.maximum(0, self.index.num_samples[rows] - self.segment)
        starts = np.floor(rng.random(len(rows)) * (room + 1)).astype(np.int64)
        order = rng.permutation(len(rows))
        if self.locality_groups:
            # Row groups go to windows at random; crops are ordered by window, randomly inside one.
            window_of_group = rng.permutation(len(self.index.file_of)) // self.locality_groups
            order = np.lexsort((rng.random(len(rows)), window_of_group[self.index.group[rows]]))
        keys = np.stack([rows[order], starts[order]], axis=1)
        keys = keys[: self.batches_per_epoch * self.batch_size * self.world_size]
        return keys[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch = self.start_batch
        while True:
            epoch, first = divmod(batch, self.batches_per_epoch)
            keys = self.epoch_keys(epoch)
            for b in range(first, self.batches_per_epoch):
                chunk = keys[b * self.batch_size : (b + 1) * self.batch_size]
                yield [(int(r), int(s)) for r, s in chunk]
            batch = (epoch + 1) * self.batches_per_epoch


def fixed_crops(dataset: CropDataset, max_examples: int) -> torch.Tensor:
    """A deterministic validation set ``[N, 1, segment]``: every row cut into consecutive crops
    (the last one zero-padded only when the row is shorter than a crop), at most ``max_examples``
    of them, evenly spaced over the split."""
    seg = dataset.segment_samples
    keys = [(row, k * seg) for row, n in enumerate(dataset.index.num_samples.tolist()) for k in range(max(1, n // seg))]
    if not keys:
        raise ValueError("the validation split has no rows")
    pick = np.unique(np.linspace(0, len(keys) - 1, min(max_examples, len(keys))).round().astype(int))
    return torch.stack([dataset[keys[i]] for i in pick])


def _worker_init(worker_id: int) -> None:
    # Crops need numpy only; one thread per worker keeps the cores for the training step.
    torch.set_num_threads(1)


def build_loader(
    dataset: CropDataset,
    sampler: CropBatchSampler,
    *,
    num_workers: int,
    prefetch_batches: int,
    pin_memory: bool,
    seed: int,
) -> DataLoader:
    """A DataLoader over ``sampler``'s batches: ``[B, 1, segment]`` float32 tensors.

    The loader draws its worker base seed from its own generator, never from torch's global RNG,
    so creating it does not disturb the training run's random stream.
    """
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_batches if num_workers > 0 else None,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
