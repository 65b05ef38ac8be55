"""Lightning data module over cached waveforms: variable lengths padded per batch, lengths kept for masks."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ser_bench.data.splits import Split


class ClipDataset(Dataset):
    """(waveform, label, row) triples; clips longer than `max_samples` are cropped.

    Training crops at a random offset, evaluation takes the centre, so evaluation is deterministic.
    """

    def __init__(self, waves: list[np.ndarray], labels: list[int], rows: np.ndarray,
                 max_samples: int | None, train: bool):
        self.waves, self.labels, self.rows = waves, labels, rows
        self.max_samples, self.train = max_samples, train

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = int(self.rows[i])
        wave = self.waves[row]
        if self.max_samples and len(wave) > self.max_samples:
            excess = len(wave) - self.max_samples
            start = int(torch.randint(0, excess + 1, ()).item()) if self.train else excess // 2
            wave = wave[start:start + self.max_samples]
        return torch.tensor(np.asarray(wave), dtype=torch.float32), self.labels[row], row


def collate(batch):
    """Pad to the longest clip in the batch; `lengths` lets models mask the padding."""
    waves, labels, rows = zip(*batch)
    lengths = torch.tensor([len(w) for w in waves])
    padded = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w
    return {"wave": padded, "lengths": lengths, "label": torch.tensor(labels), "row": torch.tensor(rows)}


class SERDataModule(L.LightningDataModule):
    def __init__(self, waves: list[np.ndarray], labels: list[int], split: Split, batch_size: int = 32,
                 max_seconds: float | None = None, sample_rate: int = 16_000, num_workers: int = 0):
        super().__init__()
        self.waves, self.labels, self.split = waves, labels, split
        self.batch_size, self.num_workers = batch_size, num_workers
        self.max_samples = int(max_seconds * sample_rate) if max_seconds else None

    def _loader(self, rows: np.ndarray, train: bool) -> DataLoader:
        dataset = ClipDataset(self.waves, self.labels, rows, self.max_samples, train)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, collate_fn=collate,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split.train, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, train=False)
