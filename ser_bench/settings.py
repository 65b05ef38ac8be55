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
    check_trainer(cfg)
    check_corpus_fits(cfg)
    check_cache_dir(cfg.cache_dir)
    stores.check(str(cfg.tracking.uri))


def check_rules(cfg: DictConfig) -> None:
    for key, (wanted, ok) in RULES.items():
        value = OmegaConf.select(cfg, key, default=MISSING)
        if value is not MISSING and not ok(value):
            raise UserError(f"{key}={value!r}: must be {wanted}")


# Trainer arguments ser_bench passes itself: config groups say what to add.
OWN_TRAINER_ARGS = {
    "logger": "add Lightning's loggers with logger=csv, logger=tensorboard or logger=[csv,tensorboard] (conf/logger/)",
    "callbacks": "add Lightning callbacks with callbacks=NAME (conf/callbacks/) or +callbacks.NAME._target_=CLASS",
    "use_distributed_sampler": "under DDP each process evaluates its own part of the clips (ser_bench.distributed)",
}


def check_trainer(cfg: DictConfig) -> None:
    """Every trainer.X is an argument of lightning.Trainer, and none is one ser_bench passes itself."""
    import difflib
    import inspect

    from lightning import Trainer

    known = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    for key in cfg.get("trainer") or {}:
        if key in OWN_TRAINER_ARGS:
            raise UserError(f"trainer.{key} is set by ser_bench: {OWN_TRAINER_ARGS[key]}")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise UserError(f"trainer.{key}: lightning.Trainer has no such argument"
                            f"{f' (did you mean trainer.{close[0]}?)' if close else ''}")
    from ser_bench import distributed

    distributed.processes(cfg.get("trainer") or {})  # what DDP cannot do yet is one line


def check_corpus_fits(cfg: DictConfig) -> None:
    """A synthetic corpus with too few actors for the split is refused before anything is generated."""
    data, split = cfg.get("data") or {}, cfg.get("split") or {}
    if not str(data.get("_target_", "")).endswith("synthetic.load"):
        return
    n = int(data.get("n_actors", 24))
    protocol = str(split.get("_target_", "")).rpartition(".")[2]
    fold = split.get("fold", 0)
    val = 0 if split.get("val", "speakers") == "utterances" else int(split.get("n_val_actors", 2) or 0)
    fix = "use data.n_actors=24, or debug=fast (a tiny corpus every split fits)"
    if protocol == "emobox" and _integer(fold):
        from ser_bench.data.splits import EMOBOX_FOLDS

        needed = EMOBOX_FOLDS[fold] if fold < len(EMOBOX_FOLDS) else ()
        missing = [a for a in needed if a > n]
        if missing:
            raise UserError(f"data.n_actors={n}: split=emobox fold {fold} tests actors "
                            f"{' '.join(map(str, needed))}, and a corpus of {n} actors lacks {missing}; {fix}, "
                            f"or split=loso (fold K tests actor K+1)")
    elif protocol == "loso" and _integer(fold) and fold >= n:
        raise UserError(f"data.n_actors={n}: split=loso has folds 0-{n - 1} for it, not split.fold={fold}")
    if protocol in ("emobox", "loso") and n < val + 2:
        raise UserError(f"data.n_actors={n}: too few actors for a test actor, {val} validation actors and a "
                        f"training actor; use data.n_actors={val + 2} or more, a lower split.n_val_actors, or "
                        f"split.val=utterances (validation on held-out clips of the training actors)")


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
