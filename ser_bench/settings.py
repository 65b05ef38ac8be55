"""Settings checked before anything runs: a bad value is one line naming the setting and what it takes, and no
MLflow run is opened for it (a run that cannot start has no result to record)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ser_bench import stores
from ser_bench.errors import UserError


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


RULES: dict[str, tuple[str, Callable[[object], bool]]] = {
    "seed": ("an integer", _integer),
    "loader.batch_size": ("an integer >= 1", lambda v: _integer(v) and v >= 1),
    "loader.max_seconds": ("a number of seconds > 0, or null (whole clips)",
                           lambda v: v is None or _number(v) and v > 0),
    "loader.num_workers": ("an integer >= 0", lambda v: _integer(v) and v >= 0),
    "trainer.max_epochs": ("an integer >= 1", lambda v: _integer(v) and v >= 1),
    "early_stopping.patience": ("an integer >= 0 (0: off)", lambda v: _integer(v) and v >= 0),
    "model.optim.lr": ("a number > 0", lambda v: _number(v) and v > 0),
    "model.optim.weight_decay": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "model.optim.label_smoothing": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "model.optim.mixup": ("a number >= 0 (0: off)", lambda v: _number(v) and v >= 0),
    "model.optim.speaker_adversarial": ("a number >= 0 (0: off)", lambda v: _number(v) and v >= 0),
    "model.optim.ema": ("a number in [0, 1) (0: off)", lambda v: _number(v) and 0 <= v < 1),
    "model.optim.warmup_fraction": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "split.fold": ("an integer >= 0", lambda v: _integer(v) and v >= 0),
}
MISSING = object()


def check(cfg: DictConfig) -> None:
    """Every rule that applies to `cfg`, the cache folder and the tracking store; the first problem is a
    UserError."""
    check_rules(cfg)
    check_cache_dir(cfg.cache_dir)
    stores.check(str(cfg.tracking.uri))


def check_rules(cfg: DictConfig) -> None:
    for key, (wanted, ok) in RULES.items():
        value = OmegaConf.select(cfg, key, default=MISSING)
        if value is not MISSING and not ok(value):
            raise UserError(f"{key}={value!r}: must be {wanted}")


def check_cache_dir(cache_dir: str) -> Path:
    """The cache folder, created where missing; a file in its place or a folder that cannot be written is one line."""
    path = Path(str(cache_dir)).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"cache_dir={cache_dir} is a file, not a folder: point cache_dir (or SER_BENCH_CACHE) at a "
                        f"folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(f"cache_dir={cache_dir} cannot be written ({err.strerror or err}): point cache_dir (or "
                        f"SER_BENCH_CACHE) at a folder you can write") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"cache_dir={cache_dir} cannot be written: point cache_dir at a folder you can write")
    return path
