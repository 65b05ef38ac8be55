"""`python -m ser_bench.bench sweep`: one small sweep through the real command line on several Hydra launchers
(basic, joblib, submitit_local; joblib:2 for 2 parallel jobs), alternating in rounds; wall time, and the per-job
overhead beyond the MLflow runs.

Each sweep gets its own temporary store and sweep folder, and `resume=false`, so nothing is skipped.
An untimed warm-up sweep first fills the caches (corpus, decoded audio, augmented copies, log-mel)
that every later sweep shares, so no launcher pays for them; it trains, validates and tests on one
batch each, since the caches are made before training starts.
Everything outside the runs (interpreter and library start-up, corpus and cache loading before a
run opens, the sweep's own bookkeeping) is the difference between wall time x jobs and the runs' sum; with one job
at a time (every launcher without `:N`; submitit and Ray in batches of one job, `hydra.sweeper.max_batch_size=1`)
that over the number of runs is the per-job overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
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

HELP = "a small sweep on the basic, joblib and submitit launchers: wall time and per-job overhead"

# The launcher settings of each entry of --launchers: NAME or NAME:N (N parallel jobs).
LAUNCHERS = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs={n}"],
             # submitit's local executor runs a batch's jobs side by side: batches of N jobs
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.sweeper.max_batch_size={n}"],
             # the cluster of RAY_ADDRESS (`ray start --head`), else a Ray instance started per sweep; batches of N
             # jobs, each asking for its share of the cores
             "ray": ["hydra/launcher=ray", "hydra.sweeper.max_batch_size={n}",
                     "+hydra.launcher.ray.remote.num_cpus={cpus}"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--launchers", default="basic,joblib,submitit_local,ray,joblib:2",
                        help="launchers to compare, NAME or NAME:PARALLEL_JOBS (default: %(default)s; ray where "
                        "Hydra's Ray launcher is installed)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per launcher (default: %(default)s)")
    parser.add_argument("--sweep", default=DEFAULT_SWEEP, help="sweep overrides (default: %(default)s)")
    parser.add_argument("--standard", action="store_true",
                        help="the standard study instead: cnn1d, cnn2d x none, all x 6 emobox folds on --root")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"for --standard: {ROOT_HELP}")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run for --standard (default: %(default)s)")


def launcher_overrides(entry: str) -> tuple[list[str], int]:
    """The overrides of a --launchers entry and its number of parallel jobs."""
    name, _, n = entry.partition(":")
    if name not in LAUNCHERS:
        raise SystemExit(f"error: --launchers {entry}: no such launcher; choose from {', '.join(LAUNCHERS)}")
    n_jobs = int(n or 1)
    if name == "basic" and n_jobs != 1:
        raise SystemExit("error: --launchers basic runs one job at a time")
    cpus = max(1, (os.cpu_count() or 1) // n_jobs)
    return [o.format(n=n_jobs, cpus=cpus) for o in LAUNCHERS[name]], n_jobs


def ray_command() -> str | None:
    """The `ray` command of this Python's environment (or on PATH), None where Ray is not installed."""
    import shutil

    return shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


@contextlib.contextmanager
def local_ray_cluster(ray: str):
    """A Ray cluster on 127.0.0.1 (`ray start --head` on a free port), stopped afterwards; yields its address.

    Without token authentication (RAY_AUTH_MODE=disabled): Ray (2.60 here) `ray start` turns it on by itself wherever
    ~/.ray/auth_token exists, which any earlier local `ray.init()` leaves behind, and a sweep given the address
    then fails with InvalidAuthToken (docs/tracking.md)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                    "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True, timeout=180,
                   env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


@contextlib.contextmanager
def ray_cluster(needed: bool):
    """RAY_ADDRESS where it is set; else a Ray cluster on 127.0.0.1 for the benchmark, stopped at the end, so that
    no sweep pays for starting Ray."""
    if not needed or os.environ.get("RAY_ADDRESS"):
        yield
        return
    start = time.perf_counter()
    with local_ray_cluster(ray_command()) as address:
        print(f"  a Ray cluster on {address} for the ray launcher: started in {time.perf_counter() - start:.1f} s "
              f"(not in any sweep's wall time)", flush=True)
        os.environ["RAY_ADDRESS"] = address
        try:
            yield
        finally:
            del os.environ["RAY_ADDRESS"]


def _run_sweep(overrides: list[str], launcher: list[str], work: Path) -> tuple[float, float, int]:
    """Wall seconds, seconds inside the MLflow runs (summed), number of runs."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work}/mlflow.db"
    cmd = [sys.executable, "-m", "ser_bench", "-m", *launcher,
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
    entries = args.launchers.split(",")
    if "ray" in entries and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        print("ray left out: Hydra's Ray launcher is not installed (see docs/tracking.md)")
        entries.remove("ray")
    settings = {e: launcher_overrides(e) for e in entries}
    walls: dict[str, list[float]] = {e: [] for e in entries}
    overheads: dict[str, list[float]] = {e: [] for e in entries}
    print(f"sweep: {' '.join(overrides)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ser_bench_sweep_") as work:
        warm, _, _ = _run_sweep([*overrides, *WARM_UP], [], Path(work))
    print(f"  warm-up (caches, one batch per stage; untimed for the comparison): {warm:.1f} s", flush=True)
    with ray_cluster(any(e.startswith("ray") for e in entries)):
        _rounds(args, entries, settings, overrides, walls, overheads)
    for entry in entries:
        print(summary(f"wall, {entry}", walls[entry]))
        print(summary(f"per-job overhead beyond the runs, {entry}", overheads[entry]))
    base = statistics.median(walls[entries[0]])
    for entry in entries[1:]:
        print(f"wall {entries[0]} / {entry}: {base / statistics.median(walls[entry]):.2f}x")


def _rounds(args, entries, settings, overrides, walls, overheads) -> None:
    for _ in range(args.rounds):
        for entry in entries:
            launcher, n_jobs = settings[entry]
            with tempfile.TemporaryDirectory(prefix="ser_bench_sweep_") as work:
                wall, in_runs, n_runs = _run_sweep(overrides, launcher, Path(work))
            walls[entry].append(wall)
            per_job = (wall * n_jobs - in_runs) / n_runs
            overheads[entry].append(per_job)
            print(f"  {entry}: {n_runs} runs, wall {wall:.1f} s, inside MLflow runs {in_runs:.1f} s; outside them "
                  f"{per_job:.1f} s per job{' (x parallel jobs)' if n_jobs > 1 else ''}", flush=True)
