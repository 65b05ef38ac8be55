"""`python -m ser_bench.bench sweep`: one small sweep through the real command line with 1 and with
2 parallel jobs (joblib launcher), alternating; wall time, and how much of it the MLflow runs cover.

Each side gets its own temporary store and sweep folder, and `resume=false`, so nothing is skipped.
An untimed warm-up sweep first fills the caches (corpus, decoded audio, augmented copies, log-mel)
that every later sweep shares, so neither side pays for them; it trains, validates and tests on one
batch each, since the caches are made before training starts.
Everything outside the runs (interpreter and library start-up, corpus and cache loading before a
run opens, the sweep's own bookkeeping) is the difference between wall time x jobs and the runs' sum.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, need_root, summary

DEFAULT_SWEEP = ("model=cnn1d augment=none,all split.fold=0,1 trainer.max_epochs=3 early_stopping.patience=0 "
                 "trainer.enable_progress_bar=false")

# The standard study on real RAVDESS (--standard): both CNNs x no / all augmentation x the 6 folds.
STANDARD_SWEEP = ("data=ravdess data.root={root} model=cnn1d,cnn2d augment=none,all 'split.fold=range(6)' "
                  "trainer.max_epochs={epochs} early_stopping.patience=0 trainer.enable_progress_bar=false")

WARM_UP = ("trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
           "++trainer.limit_test_batches=1")

HELP = "a sweep with 1 vs 2 parallel jobs: wall time and what the runs cover"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", default="1,2", help="parallel job counts to compare (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per job count (default: %(default)s)")
    parser.add_argument("--sweep", default=DEFAULT_SWEEP, help="sweep overrides (default: %(default)s)")
    parser.add_argument("--standard", action="store_true",
                        help="the standard study instead: cnn1d, cnn2d x none, all x 6 emobox folds on --root")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"for --standard: {ROOT_HELP}")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run for --standard (default: %(default)s)")


def _run_sweep(overrides: list[str], n_jobs: int, work: Path) -> tuple[float, float, int]:
    """Wall seconds, seconds inside the MLflow runs (summed), number of runs."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work}/mlflow.db"
    cmd = [sys.executable, "-m", "ser_bench", "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}",
           *overrides, "resume=false", f"tracking.uri={uri}", f"hydra.sweep.dir={work}/sweep"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: the sweep failed ({shlex.join(cmd)}):\n{proc.stderr[-2000:]}")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ser_bench")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("kind") != "sweep"]
    return wall, sum((r.info.end_time - r.info.start_time) / 1000 for r in runs), len(runs)


def run(args: argparse.Namespace) -> None:
    sweep = STANDARD_SWEEP.format(root=need_root(args.root), epochs=args.epochs) if args.standard else args.sweep
    overrides = shlex.split(sweep)
    counts = [int(j) for j in args.jobs.split(",")]
    walls: dict[int, list[float]] = {j: [] for j in counts}
    inside: dict[int, list[float]] = {j: [] for j in counts}
    print(f"sweep: {' '.join(overrides)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ser_bench_sweep_") as work:
        warm, _, _ = _run_sweep([*overrides, *WARM_UP], 1, Path(work))
    print(f"  warm-up (caches, one batch per stage; untimed for the comparison): {warm:.1f} s", flush=True)
    for _ in range(args.rounds):
        for n_jobs in counts:
            with tempfile.TemporaryDirectory(prefix="ser_bench_sweep_") as work:
                wall, in_runs, n_runs = _run_sweep(overrides, n_jobs, Path(work))
            walls[n_jobs].append(wall)
            inside[n_jobs].append(in_runs)
            print(f"  {n_jobs} job(s): {n_runs} runs, wall {wall:.1f} s, inside MLflow runs {in_runs:.1f} s "
                  f"(outside: {100 * (1 - in_runs / (wall * n_jobs)):.0f}% of {n_jobs} x wall)", flush=True)
    for n_jobs in counts:
        print(summary(f"wall, {n_jobs} parallel job(s)", walls[n_jobs]))
    base = statistics.median(walls[counts[0]])
    for n_jobs in counts[1:]:
        print(f"speed-up {n_jobs} vs {counts[0]} job(s): {base / statistics.median(walls[n_jobs]):.2f}x")
