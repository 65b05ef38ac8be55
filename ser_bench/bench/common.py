"""Timing helpers shared by the benchmarks: several rounds, medians with ranges, ratios, peak memory."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Where the real RAVDESS copy lies, for the benchmarks that read one: --root PATH, or this environment variable.
ROOT_ENV = "SER_BENCH_RAVDESS"
DEFAULT_ROOT = Path(os.environ[ROOT_ENV]) if os.environ.get(ROOT_ENV) else None
ROOT_HELP = f"RAVDESS folder (default: ${ROOT_ENV}, {DEFAULT_ROOT or 'not set'})"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(name: str, seconds: list[float]) -> str:
    return (f"{name:<34} median {statistics.median(seconds):8.3f} s   "
            f"min {min(seconds):8.3f}   max {max(seconds):8.3f}   ({len(seconds)} rounds)")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def need_root(root: Path | None) -> Path:
    if root is None:
        raise SystemExit(f"error: this benchmark reads real RAVDESS: pass --root PATH or set ${ROOT_ENV}")
    return root


def corpus_paths(root: Path | None, limit: int | None = None) -> list[Path]:
    from ser_bench.data.ravdess import scan

    root = need_root(root)
    paths = [u.path for u in scan(root)]
    return paths[:limit] if limit else paths


def compose_train(overrides: list[str]):
    """The project's `train` config with `overrides`, as `python -m ser_bench` composes it."""
    from hydra import compose, initialize_config_dir

    from ser_bench import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
