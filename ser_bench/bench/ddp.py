"""`python -m ser_bench.bench ddp`: one run in one process vs the same run as DDP on N processes (gloo on CPU).

Both train the same model on the same fold for the same epochs with the same effective batch: one process with
`--batch`, N ranks with `--batch / N` each, so both take as many optimizer steps. Each seed trains both (the
order alternating from seed to seed) through `train.run`, as `python -m ser_bench` does, into a temporary MLflow
store. Printed: wall time (median over seeds), and test UA / WA / macro-F1 and best validation UA of each run.
The DDP side pays for starting its ranks (fresh interpreters importing torch, Lightning, MLflow) and for the
all-reduce of every step's gradients; on a CPU with few cores the ranks also share the cores that the single
process had to itself.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, compose_train, need_root, summary, timed

HELP = "one run: one process vs DDP on N processes, same effective batch: wall time and test UA"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--data", default="ravdess", help="data option; synthetic ignores --root")
    parser.add_argument("--model", default="cnn1d", help="a model from conf/model (default: %(default)s)")
    parser.add_argument("--fold", type=int, default=0, help="emobox fold (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=15, help="trainer.max_epochs (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="effective batch size (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=2, help="DDP ranks (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="more settings for both sides, as on the command line "
                                                     "(model.net.standardize=true)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one run per side each (default: "
                                                     "%(default)s)")


def _cfg(args: argparse.Namespace, work: Path, ddp: bool, seed: int):
    batch = args.batch // args.processes if ddp else args.batch
    overrides = [f"data={args.data}", f"model={args.model}", f"split.fold={args.fold}", f"seed={seed}",
                 f"trainer.max_epochs={args.epochs}", f"loader.batch_size={batch}", "trainer.enable_progress_bar=false",
                 f"tracking.uri=sqlite:///{work}/mlflow.db", f"paths.output_dir={work}/{'ddp' if ddp else 'one'}"]
    if ddp:
        overrides += ["+trainer.strategy=ddp", f"trainer.devices={args.processes}", "trainer.accelerator=cpu"]
    if args.data != "synthetic":
        overrides.append(f"data.root={need_root(args.root)}")
    return compose_train(overrides + list(args.overrides))


def run(args: argparse.Namespace) -> None:
    from ser_bench import train

    if args.batch % args.processes:
        raise SystemExit(f"error: --batch {args.batch} does not split into {args.processes} equal per-rank batches")
    logging.getLogger().setLevel(logging.WARNING)
    keys = ("test/ua", "test/wa", "test/macro_f1", "best/val_ua", "best/epoch")
    with tempfile.TemporaryDirectory(prefix="ser_bench_ddp_") as tmp:
        work = Path(tmp)
        sides = {"one process": False, f"DDP, {args.processes} processes": True}
        walls: dict[str, list[float]] = {name: [] for name in sides}
        metrics: dict[str, list[dict]] = {name: [] for name in sides}
        seeds = [int(s) for s in args.seeds.split(",")]
        for i, seed in enumerate(seeds):
            for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                result: dict = {}
                cfg = _cfg(args, work, sides[name], seed)
                walls[name].append(timed(lambda c=cfg, out=result: out.update(train.run(c))))
                metrics[name].append({k: result["metrics"][k] for k in keys})
        print(f"{args.model}, {args.data} emobox fold {args.fold}, {args.epochs} epochs (early stopping as "
              f"configured), effective batch {args.batch}, seeds {args.seeds}:")
        for name in sides:
            print(summary(f"  {name}", walls[name]))
            for seed, m in zip(seeds, metrics[name]):
                print(f"    seed {seed}: test UA {m['test/ua']:.3f}  WA {m['test/wa']:.3f}  "
                      f"macro-F1 {m['test/macro_f1']:.3f}  best val UA {m['best/val_ua']:.3f} "
                      f"(epoch {int(m['best/epoch'])})")
        one, ddp = (statistics.median(walls[name]) for name in sides)
        print(f"  DDP / one process wall time: {ddp / one:.2f}x")
        if len(seeds) > 1:
            ua = {name: [m["test/ua"] for m in metrics[name]] for name in sides}
            print("  test UA mean ± std over seeds: " + ", ".join(
                f"{name} {statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" for name, v in ua.items()))
