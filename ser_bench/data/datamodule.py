"""Lightning data module over cached waveforms: variable lengths padded per batch, lengths kept for masks.

Augmentation reaches training rows only: offline copies are extra training rows, online transforms
run in the training dataset. Validation and test datasets never hold an augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ser_bench.data.padding import pad
from ser_bench.data.splits import Split
from ser_bench.distributed import Shard

# (wave, rng) -> wave, e.g. ser_bench.augment.Augmentation; `generator(epoch, row)` gives the rng.
WaveAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class ClipDataset(Dataset):
    """(waveform, label, row) triples; clips longer than `max_samples` are cropped.

    Training crops at a random offset, evaluation takes the centre, so evaluation is deterministic.
    With `augment` (training only), an index is an (row index, epoch) pair from `EpochSampler`.
    """

    def __init__(self, waves: list[np.ndarray], labels: list[int], rows: np.ndarray,
                 max_samples: int | None, train: bool, augment: WaveAugment | None = None):
        if augment is not None and not train:
            raise ValueError("augmentation applies to training data only")
        self.waves, self.labels, self.rows = waves, labels, rows
        self.max_samples, self.train, self.augment = max_samples, train, augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        i, epoch = index if isinstance(index, tuple) else (index, None)
        row = int(self.rows[i])
        wave = torch.tensor(np.asarray(self.waves[row]), dtype=torch.float32)
        if self.augment is not None:
            if epoch is None:
                raise ValueError("online augmentation needs (index, epoch) pairs from EpochSampler")
            wave = self.augment(wave, self.augment.generator(epoch, row))
        if self.max_samples and len(wave) > self.max_samples:
            excess = len(wave) - self.max_samples
            start = int(torch.randint(0, excess + 1, ()).item()) if self.train else excess // 2
            wave = wave[start:start + self.max_samples]
        return wave, self.labels[row], row


class EpochSampler(Sampler):
    """Shuffles like RandomSampler, seeded by (seed, epoch), and yields (index, epoch) pairs.

    Lightning calls `set_epoch` before each epoch; the epoch travels with the index, so online
    augmentation stays reproducible with any number of (persistent) DataLoader workers. With `world` > 1
    (DDP), rank `rank` takes every world-th index of the epoch's order, the order padded from its start to a
    multiple of `world` (as torch's DistributedSampler does), so every rank steps through as many batches.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.rank, self.world = n, seed, 0, rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        if self.world > 1:
            order = torch.cat([order, order[:len(self) * self.world - self.n]])[self.rank::self.world]
        return iter([(int(i), self.epoch) for i in order])


def collate(batch):
    """Pad to the longest clip in the batch; `lengths` lets models mask the padding."""
    waves, labels, rows = zip(*batch)
    padded, lengths = pad(waves)
    return {"wave": padded, "lengths": lengths, "label": torch.tensor(labels), "row": torch.tensor(rows)}


class SERDataModule(L.LightningDataModule):
    """`copies`: offline augmented copies, `k * len(waves)` arrays (all clips' copy 0, then copy 1, ...);
    their training rows are `len(waves) * (k + 1) + row`. `online`: a WaveAugment run per training draw.
    """

    def __init__(self, waves: list[np.ndarray], labels: list[int], split: Split, batch_size: int = 32,
                 max_seconds: float | None = None, sample_rate: int = 16_000, num_workers: int = 0,
                 copies: list[np.ndarray] | None = None, online: WaveAugment | None = None, seed: int = 0):
        super().__init__()
        n = len(waves)
        if copies and len(copies) % n:
            raise ValueError(f"{len(copies)} offline copies for {n} clips: not a whole number per clip")
        k = len(copies) // n if copies else 0
        self.waves = list(waves) + list(copies or [])
        self.labels = list(labels) * (k + 1)
        self.split, self.online, self.seed = split, online, seed
        self.train_rows = np.concatenate([split.train + n * j for j in range(k + 1)])
        self.batch_size, self.num_workers = batch_size, num_workers
        self.max_samples = int(max_seconds * sample_rate) if max_seconds else None

    def use_features(self, table: list[np.ndarray], max_len: int | None = None) -> None:
        """Serve precomputed per-clip features (one per row, as `waves` was) instead of audio: pooled
        vectors, or [frames, n_mels] log-mel that is cropped to `max_len` frames as audio was to samples."""
        if len(table) != len(self.waves):
            raise ValueError(f"{len(table)} feature rows for {len(self.waves)} clips")
        self.waves, self.max_samples = table, max_len

    def _loader(self, rows: np.ndarray, train: bool, what: str = "training") -> DataLoader:
        dataset = ClipDataset(self.waves, self.labels, rows, self.max_samples, train, self.online if train else None)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        sampler = None
        if train and self.online is not None:
            sampler = EpochSampler(len(rows), self.seed, rank, world)
        elif world > 1:  # DDP: each rank its part (Lightning's own samplers are off: ser_bench.train.make_trainer)
            sampler = (DistributedSampler(dataset, world, rank, shuffle=True, seed=self.seed) if train
                       else Shard(len(rows), rank, world, what))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train and sampler is None, sampler=sampler,
                          collate_fn=collate, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_rows, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, train=False, what="validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, train=False, what="test")
