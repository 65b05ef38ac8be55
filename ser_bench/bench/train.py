"""`python -m ser_bench.bench train`: one epoch through ser_bench vs a bare PyTorch loop, same model,
data and batch size.

ser_bench: `train.run` with `trainer.max_epochs=1`: corpus scan, the decoded-audio cache (warm),
Lightning fit (one training epoch, one validation pass), the best checkpoint tested, and all of
the MLflow logging (params, per-epoch metrics, curve and confusion figures, predictions, the
checkpoint). Bare: the same scan and cache, the same network (Hydra builds it from the same
config), the same collate and batch size, AdamW with the same learning rate and gradient clipping,
one training epoch, then validation and test accuracy under `torch.no_grad()`. Rounds alternate
sides. ser_bench runs twice: as configured (the log-mel cache warm) and with `cache_log_mel=false`,
which does the bare loop's work (log-mel every batch); that difference is what Lightning and
tracking cost.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, compose_train, need_root, peak_rss_mib, summary, timed

HELP = "one epoch of cnn1d / cnn2d: ser_bench (Lightning + MLflow) vs a bare PyTorch loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--models", default="cnn1d,cnn2d", help="models from conf/model (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default: %(default)s)")
    parser.add_argument("--fold", type=int, default=0, help="emobox fold (default: %(default)s)")
    parser.add_argument("--data", default="ravdess", help="data option; synthetic ignores --root")


def _cfg(model: str, args: argparse.Namespace, work: Path, *extra: str):
    overrides = [f"data={args.data}", f"model={model}", f"split.fold={args.fold}", "trainer.max_epochs=1",
                 "early_stopping.patience=0", "trainer.enable_progress_bar=false",
                 f"tracking.uri=sqlite:///{work}/mlflow.db", f"paths.output_dir={work}/out",
                 f"cache_dir={work}/cache"]
    if args.data != "synthetic":
        overrides.append(f"data.root={need_root(args.root)}")
    return compose_train(overrides + list(extra))


def _empty_outputs(cfg) -> None:
    """Each timed run starts with an empty output folder, as a new run's own folder would be."""
    shutil.rmtree(cfg.paths.output_dir, ignore_errors=True)


def bare(cfg) -> float:
    """The same epoch written by hand; returns test accuracy (so the work cannot be skipped)."""
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from ser_bench.data.audio import SAMPLE_RATE
    from ser_bench.data.cache import load_waveforms
    from ser_bench.data.datamodule import ClipDataset, collate
    from ser_bench.data.manifest import label_ids
    from ser_bench.train import corpus_and_labels

    torch.manual_seed(cfg.seed)
    manifest, classes, _ = corpus_and_labels(cfg)
    split = instantiate(cfg.split)(manifest)
    waves = load_waveforms([u.path for u in manifest], cfg.cache_dir)
    y = label_ids(manifest, tuple(classes))
    max_samples = int(cfg.loader.max_seconds * SAMPLE_RATE)
    # Channels-last 2D weights, as SERModule holds them: the same convolution work on both sides.
    net = instantiate(cfg.model.net, num_classes=len(classes)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.model.optim.lr, weight_decay=cfg.model.optim.weight_decay)

    def loader(rows, train):
        return DataLoader(ClipDataset(waves, y, rows, max_samples, train, None), batch_size=cfg.loader.batch_size,
                          shuffle=train, collate_fn=collate)

    net.train()
    for batch in loader(split.train, True):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(batch["wave"], batch["lengths"]), batch["label"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
    net.eval()
    accuracy = 0.0
    with torch.no_grad():
        for rows in (split.val, split.test):
            correct = sum(int((net(b["wave"], b["lengths"]).argmax(1) == b["label"]).sum())
                          for b in loader(rows, False))
            accuracy = correct / len(rows)
    return accuracy


def run(args: argparse.Namespace) -> None:
    import logging

    from ser_bench import train

    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="ser_bench_train_") as tmp:
        work = Path(tmp)
        for model in args.models.split(","):
            cfg, uncached = _cfg(model, args, work), _cfg(model, args, work, "cache_log_mel=false")
            train.run(cfg)  # warm-up: fills the decoded-audio and log-mel caches, first-call costs
            bare(cfg)
            ours, ours_uncached, theirs = [], [], []
            for _ in range(args.rounds):
                _empty_outputs(cfg)
                ours.append(timed(lambda c=cfg: train.run(c)))
                _empty_outputs(uncached)
                ours_uncached.append(timed(lambda c=uncached: train.run(c)))
                theirs.append(timed(lambda c=cfg: bare(c)))
            print(f"{model}, {args.data} emobox fold {args.fold}, one epoch (train + validation + test), "
                  f"batch {cfg.loader.batch_size}, torch threads {torch.get_num_threads()}:")
            print(summary("  ser_bench (log-mel cached)", ours))
            print(summary("  ser_bench (cache_log_mel=false)", ours_uncached))
            print(summary("  bare PyTorch loop", theirs))
            overhead = statistics.median(ours_uncached) / statistics.median(theirs)
            print(f"  Lightning + MLflow, same work: ser_bench / bare {overhead:.3f} ({100 * (overhead - 1):+.1f}%)")
            print(f"  as configured: bare / ser_bench {statistics.median(theirs) / statistics.median(ours):.2f}x",
                  flush=True)
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
