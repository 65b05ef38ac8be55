"""What makes two runs the same result: the config hash (resume, ensemble reuse) and the report's settings.

One table of decisions, each with its reason. A key left out of the hash cannot change what a run computes;
every other key is in, spelled so that two spellings of one thing hash alike (paths resolved). Runs logged
before this module keep matching: `legacy_hash` is the rule they were tagged with, frozen.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os

from omegaconf import DictConfig, OmegaConf

# Left out of the hash: cannot change a result.
IGNORED = {
    "tracking": "where and under which name the run is logged",
    "paths": "where outputs are written",
    "cache_dir": "where caches live; an entry is keyed by its content and checks itself",
    "data.cache_dir": "where a generated corpus is kept, not what it holds",
    "eval_data.cache_dir": "the same, for the test corpus",
    "hydra": "Hydra's own bookkeeping (output folders, launcher, sweeper)",
    "resume": "whether to skip finished runs, not how to train them",
    "logger": "extra Lightning loggers only record metrics",
    "trainer.enable_progress_bar": "display only",
    "trainer.enable_model_summary": "display only",
}
# In the hash, with a reason, where someone might expect otherwise.
KEPT = {
    "cache_log_mel": "the cached log-mel differs in each batch's longest clip's last 2 frames, and training "
                     "amplifies it (RAVDESS cnn1d fold 0: test UA 0.598 cached, 0.516 not)",
    "loader.num_workers": "workers draw training crops and shuffles from their own seeded streams: 0 and 2 workers "
                          "gave different predictions, with and without crops (experiments/integration.md)",
    "callbacks": "a Lightning callback can change training (e.g. stochastic weight averaging)",
}
# Keys whose value is a path: expanded and resolved (trailing slash, ~, symbolic links) before hashing.
PATHS = ("data.root", "data.metadata", "eval_data.root", "eval_data.metadata", "model.pretrained", "model.init_from")
# Options added after runs were logged, with the value those runs had: left out of the hash at that value, so
# older runs keep their hash, and read as that value by the report where a run lacks the param.
ADDED_OPTIONS = {"labels": "native", "model.net.pool": "stats", "model.optim.mixup": 0.0,
                 "model.optim.speaker_adversarial": 0.0, "model.optim.ema": 0.0, "data.allow_outside_root": False,
                 "split.val": "speakers", "callbacks": {}, "model.net.standardize": False}
# Params the report never treats as a setting of a cell: the hash's IGNORED keys, and what differs between
# the runs of one setting by design (fold, seed) or names a copy of the data (its root).
NOT_SETTINGS = (*IGNORED, "split.fold", "seed", "data.root", "eval_data.root", "loader.num_workers")


def _pop(container: dict, dotted: str):
    *parents, leaf = dotted.split(".")
    node = container
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return node.pop(leaf, None)
    return None


def _get(container: dict, dotted: str):
    node = container
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(container: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = container
    for key in parents:
        node = node[key]
    node[leaf] = value


def normal_path(value: str) -> str:
    """A path as one spelling: ~ expanded, resolved (links, `..`, trailing slash). A value that names no existing
    file or folder (a hub id, a run id) is kept as written, except for a trailing slash."""
    expanded = os.path.expanduser(value)
    if os.path.exists(expanded) or os.path.isabs(expanded):
        return os.path.realpath(expanded)
    return value.rstrip("/") or value


def _hash(container: dict) -> str:
    return hashlib.sha1(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def _without_added(container: dict) -> None:
    for dotted, default in ADDED_OPTIONS.items():
        if _get(container, dotted) == default:
            _pop(container, dotted)


def config_hash(cfg: DictConfig) -> str:
    """Hash of everything that can change a result."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in IGNORED:
        _pop(container, key)
    for key in PATHS:
        value = _get(container, key)
        if isinstance(value, str) and value:
            _set(container, key, normal_path(value))
    if "LogMel" not in str(_get(container, "model.net.frontend._target_")):
        _pop(container, "cache_log_mel")  # only log-mel models have a log-mel to cache
    _without_added(container)
    container["result_key"] = 2  # this rule; legacy_hash is rule 1
    return _hash(container)


# The rule runs were tagged with before this module (rule 1), frozen: resume and ensembles still find them.
_LEGACY_IGNORED = ("tracking", "paths", "cache_dir", "cache_log_mel", "hydra", "resume")
_LEGACY_ADDED = {"labels": "native", "model.net.pool": "stats", "model.optim.mixup": 0.0,
                 "model.optim.speaker_adversarial": 0.0, "model.optim.ema": 0.0, "data.allow_outside_root": False}
# Keys rule 1 did not know: a run tagged with it ran with these values (or with none of these keys).
_LEGACY_UNKNOWN = {"split.val": "speakers", "logger": {}, "callbacks": {}}


def legacy_hash(cfg: DictConfig) -> str | None:
    """The rule-1 hash of `cfg`, or None where `cfg` uses something rule-1 runs never had (they cannot match)."""
    container = copy.deepcopy(OmegaConf.to_container(cfg, resolve=True))
    for dotted, default in _LEGACY_UNKNOWN.items():
        value = _pop(container, dotted)
        if value not in (None, default):
            return None
    for key in _LEGACY_IGNORED:
        container.pop(key, None)
    container.get("trainer", {}).pop("enable_progress_bar", None)
    container.get("data", {}).pop("cache_dir", None)
    for dotted, default in _LEGACY_ADDED.items():
        *parents, leaf = dotted.split(".")
        node = container
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return _hash(container)


def finished_query(cfg: DictConfig) -> list[str]:
    """MLflow filter strings that find a FINISHED run of this exact configuration: by its hash, and by the
    legacy hash where the setting rule 1 left out (cache_log_mel) is the same."""
    done = "attributes.status = 'FINISHED'"
    queries = [f"tags.config_hash = '{config_hash(cfg)}' and {done}"]
    legacy = legacy_hash(cfg)
    if legacy is not None:
        queries.append(f"tags.config_hash = '{legacy}' and params.cache_log_mel = '{cfg.get('cache_log_mel', True)}' "
                       f"and {done}")
    return queries
