"""MLflow: store set-up, run naming, tags, params, per-epoch metrics and artifacts, in one place."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import subprocess
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
from filelock import FileLock
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from ser_bench import result_key, runs, stores
from ser_bench.errors import UserError
from ser_bench.stores import sqlite_path

log = logging.getLogger(__name__)

def ensure_store(uri: str) -> None:
    """Create a SQLite store where missing (under a file lock); check that a server answers."""
    db = sqlite_path(stores.check(uri))
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(db) + ".lock"):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    elif urlparse(uri).scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except OSError as err:
            raise UserError(f"no MLflow server answers at {uri} ({err}): start one with "
                            f"`python -m ser_bench.server`, or use tracking=default") from None


def ensure_experiment(uri: str, name: str) -> str:
    """Experiment id for `name`, creating the store and the experiment where missing.

    A SQLite store keeps its artifacts beside the database (`<db dir>/artifacts/<experiment>/...`),
    so `mlruns/` holds everything whatever the working directory. MLflow cannot create a SQLite
    store from several processes at once (parallel jobs race on its schema migration), so creation
    happens under a file lock beside the database.
    """
    db = sqlite_path(stores.check(uri))
    if db is None:
        ensure_store(uri)
        return _get_or_create(MlflowClient(tracking_uri=uri), name, None)
    db.parent.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    with FileLock(str(db) + ".lock"):  # the first client call creates the store
        return _get_or_create(MlflowClient(tracking_uri=uri), name,
                              (db.parent.resolve() / "artifacts" / safe).as_uri())


def _get_or_create(client: MlflowClient, name: str, location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise UserError(f"MLflow experiment '{name}' was deleted: restore it (`mlflow experiments restore "
                            f"--experiment-id {exp.experiment_id}`) or pick another tracking.experiment=NAME")
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another process (server store)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(cfg: DictConfig) -> dict[str, str]:
    """Resolved config as dotted keys -> strings (MLflow params)."""
    out: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = json.dumps(node) if isinstance(node, list) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


@functools.cache
def git_commit() -> str:
    """Commit of the ser_bench checkout, with `-dirty` when it has uncommitted changes.

    Read once per process: a sweep's later jobs run the code imported at the start, whatever HEAD
    has moved to since.
    """
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(cfg: DictConfig, split, dropped: dict[str, int] | None = None) -> dict[str, str]:
    tags = {
        "model": str(cfg.model.name),
        "augment": str(cfg.augment.name),
        "split": split.protocol,
        "fold": str(split.fold),
        "seed": str(cfg.seed),
        "corpus": split.corpus,
        "corpus.train": " ".join(split.train_corpora),
        "corpus.test": " ".join(split.test_corpora),
        "labels": str(cfg.labels),
        "folds.total": str(split.n_folds),
        "leaky": str(split.leaky).lower(),
        "actors.train": " ".join(map(str, split.train_actors)),
        "actors.val": " ".join(map(str, split.val_actors)),
        "actors.test": " ".join(map(str, split.test_actors)),
        "git_commit": git_commit(),
        "config_hash": result_key.config_hash(cfg),
        **runs.process_tags(),  # who trains it: a run left RUNNING by a dead process can be closed (ser_bench.runs)
    }
    if dropped:
        tags["labels.dropped"] = " ".join(f"{k}={n}" for k, n in sorted(dropped.items()))
    if split.note:
        tags["split.note"] = split.note
    if split.val_by != "speakers":
        tags["split.val"] = split.val_by  # validation not speaker-independent (the test still is)
    if "pretrained" in cfg.model:  # an encoder: the same architecture with random weights is the control
        tags["pretrained"] = "true" if cfg.model.pretrained else "false"
        if cfg.model.pretrained:
            tags["weights.id"] = str(cfg.model.pretrained)
    if cfg.model.get("init_from"):
        tags["init_from"] = str(cfg.model.init_from)
    if OmegaConf.select(cfg, "model.net.frontend.norm") == "speaker":
        tags["transductive"] = "speaker normalisation (all speakers' audio, test actors' included, no labels)"
    return tags


def run_name(cfg: DictConfig, split) -> str:
    return cfg.tracking.run_name or f"{cfg.model.name}-{cfg.augment.name}-{split.protocol}{split.fold}-s{cfg.seed}"


@contextmanager
def start_run(cfg: DictConfig, split, sweep: dict | None = None, dropped: dict[str, int] | None = None,
              manifest: list | None = None, extra_tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run with tags, params and the resolved config; a crash ends it FAILED with the error.

    `sweep` ({"sweep_id", "parent_run_id"}) tags the run with its sweep and nests it under the
    sweep's parent run; `extra_tags` are the model's own (where its weights came from).
    """
    uri = cfg.tracking.uri
    mlflow.set_tracking_uri(uri)
    experiment_id = ensure_experiment(uri, cfg.tracking.experiment)
    tags = {**run_tags(cfg, split, dropped), **(extra_tags or {})}
    if sweep:
        tags["sweep_id"] = sweep["sweep_id"]
    parent = sweep.get("parent_run_id") if sweep and sweep.get("experiment_id") == experiment_id else None
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name(cfg, split), tags=tags,
                          parent_run_id=parent) as run:
        try:
            mlflow.log_params(flatten(cfg))
            mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            mlflow.log_dict(split.describe(), "split.json")
            if manifest is not None:
                log_corpus(manifest, split, str(OmegaConf.select(cfg, "data.root") or cfg.cache_dir))
            yield run
        except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C; kill (SIGTERM): Lightning makes both SystemExit
            # Closed first: a sweep's launcher may end this process moments later (what is left RUNNING then is
            # closed by the launcher, ser_bench.runs).
            terminated = type(err).__name__ == "SIGTERMException"
            MlflowClient(uri).set_terminated(run.info.run_id, "KILLED")
            MlflowClient(uri).set_tag(run.info.run_id, "error", "terminated (SIGTERM)" if terminated else "interrupted")
            mlflow.end_run("KILLED")
            if terminated:
                raise SystemExit(128 + 15) from None
            raise KeyboardInterrupt from None
        except BaseException as err:
            mlflow.set_tag("error", f"{type(err).__name__}: {err}"[:5000])
            raise  # mlflow.start_run's own exit marks the run FAILED


def log_corpus(manifest: list, split, source: str) -> None:
    """The corpus as the run's input datasets (MLflow's Datasets panel): one per part, the clips' ids, speakers and
    emotions, with a digest of that manifest (the same corpus anywhere on disk, the same digest)."""
    import hashlib

    import pandas as pd
    from mlflow.data import from_pandas

    for part, rows in (("train", split.train), ("validation", split.val), ("test", split.test)):
        frame = pd.DataFrame([{"utt_id": u.utt_id, "corpus": u.corpus, "speaker": str(u.actor), "emotion": u.emotion}
                              for u in (manifest[r] for r in rows)])
        digest = hashlib.sha1(frame.to_csv(index=False).encode()).hexdigest()[:16]
        with warnings.catch_warnings():  # MLflow registers its local-file source twice and says so on every call
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
            dataset = from_pandas(frame, source=source, name=f"{split.corpus}-{part}", digest=digest)
        _log_input(dataset, part)


def _log_input(dataset, context: str, attempts: int = 3) -> None:
    """mlflow.log_input, again when a parallel job of the sweep inserted the same dataset first: the store checks
    for the dataset and then inserts it, so two jobs of one experiment can both insert and one fails on the unique
    key; on the next try the store finds the other job's row and links to it."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as err:
            if "UNIQUE constraint" not in str(err) or attempt == attempts - 1:
                raise


def epoch_logger():
    """A Lightning callback that logs each epoch's train/val/gap metrics to the active MLflow run, with step = epoch:
    from rank 0 alone under DDP (the other ranks have no run; the metrics are all ranks' already). Built on first
    use, so that a sweep job that is skipped (resume) never imports Lightning."""
    import lightning as L

    class EpochLogger(L.Callback):
        def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
            history = getattr(pl_module, "history", [])
            if (not trainer.is_global_zero or trainer.sanity_checking or not history
                    or history[-1]["epoch"] != trainer.current_epoch):
                return
            entry = history[-1]
            mlflow.log_metrics({k: v for k, v in entry.items() if k != "epoch"}, step=int(entry["epoch"]))

    return EpochLogger()


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def log_results(metrics: dict[str, float], history: list[dict], best_epoch: int, confusion: np.ndarray,
                class_names: list[str], predictions: list[dict], checkpoint: str | None,
                val_predictions: list[dict] = ()) -> None:
    """Final metrics and the artifacts a reader of the run wants: curves, confusion, predictions (test clips;
    and the validation clips', from the same checkpoint, for choosing ensembles)."""
    from ser_bench import plots

    mlflow.log_metrics(metrics)
    for fig, name in ((plots.curves(history, best_epoch), "curves.png"),
                      (plots.confusion(confusion, class_names), "confusion_matrix.png")):
        mlflow.log_figure(fig, name, save_kwargs={"dpi": 110})
        plots.close(fig)
    mlflow.log_text(_csv([["true\\pred", *class_names]] + [[name, *map(int, row)]
                                                           for name, row in zip(class_names, confusion)]),
                    "confusion_matrix.csv")
    for rows, name in ((predictions, "predictions.csv"), (val_predictions, "val_predictions.csv")):
        if rows:
            header = list(rows[0])
            mlflow.log_text(_csv([header] + [[p[h] for h in header] for p in rows]), name)
    if checkpoint:
        mlflow.log_artifact(checkpoint, "checkpoints")


def finished_run(cfg: DictConfig):
    """The latest FINISHED run of this exact configuration (same config hash) in its experiment, or None."""
    client = MlflowClient(tracking_uri=stores.check(cfg.tracking.uri))
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return None
    for query in result_key.finished_query(cfg):  # this rule's hash, then the legacy rule's
        runs = client.search_runs([exp.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"])
        if runs:
            return runs[0]
    return None


def tracking_summary(uri: str) -> str:
    """How to open the store in the MLflow UI."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"
