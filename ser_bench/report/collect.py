"""Runs from MLflow, through its client only, as plain records the rest of the report works on."""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from mlflow.tracking import MlflowClient

from ser_bench.errors import UserError
from ser_bench.result_key import ADDED_OPTIONS, NOT_SETTINGS

# Tags a run needs to be placed in the leaderboard.
REQUIRED_TAGS = ("corpus", "split", "model", "augment", "fold", "seed")
REQUIRED_METRICS = ("test/ua", "test/wa", "test/macro_f1")
@dataclass
class Record:
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    minutes: float
    settings: dict[str, str] = field(default_factory=dict)  # swept settings beyond the tags
    experiment_id: str = "0"

    @property
    def fold(self) -> int:
        return int(self.tags["fold"])

    @property
    def seed(self) -> str:
        return self.tags["seed"]

    @property
    def leaky(self) -> bool:
        return self.tags.get("leaky") == "true" or self.tags["split"] == "random"

    @property
    def transductive(self) -> bool:
        """The run used the test actors' audio (not their labels), e.g. speaker normalisation."""
        return "transductive" in self.tags

    @property
    def n_actors(self) -> int:
        return len({a for k in ("actors.train", "actors.val", "actors.test") for a in self.tags.get(k, "").split()})


@dataclass
class Collection:
    records: list[Record]
    excluded: Counter  # status or reason -> number of runs left out
    experiments: list[str]


def collect(client: MlflowClient, experiments: list[str]) -> Collection:
    ids = []
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            known = ", ".join(e.name for e in client.search_experiments()) or "none"
            raise UserError(f"no MLflow experiment named '{name}' in this store (experiments: {known})")
        ids.append(exp.experiment_id)
    records, excluded = [], Counter()
    for run in client.search_runs(ids, max_results=50_000):
        tags = run.data.tags
        if tags.get("kind") in ("sweep", "report"):
            continue  # bookkeeping runs hold no result of their own
        if run.info.status != "FINISHED":
            excluded[run.info.status] += 1
            continue
        if any(t not in tags for t in REQUIRED_TAGS) or any(m not in run.data.metrics for m in REQUIRED_METRICS):
            excluded["missing tags or metrics"] += 1
            continue
        end = run.info.end_time or run.info.start_time
        records.append(Record(run.info.run_id, dict(tags), dict(run.data.metrics), dict(run.data.params),
                              (end - run.info.start_time) / 60_000, experiment_id=run.info.experiment_id))
    if not records:
        detail = ", ".join(f"{n} {why}" for why, n in excluded.items()) or "no runs at all"
        raise UserError(f"nothing to rank in experiment(s) {', '.join(experiments)}: no finished run with the "
                        f"tags {', '.join(REQUIRED_TAGS)} ({detail})")
    _mark_settings(records)
    return Collection(records, excluded, experiments)


def base_key(r: Record) -> tuple[str, str, str, str]:
    """(corpus, split, model, augmentation); the corpus names its label set unless it is the native one."""
    labels = r.tags.get("labels", "native")
    corpus = r.tags["corpus"] + ("" if labels == "native" else f" [labels={labels}]")
    return corpus, r.tags["split"], r.tags["model"], r.tags["augment"]


def _mark_settings(records: list[Record]) -> None:
    """A param is a swept setting of a cell (runs that share corpus, split, model and augmentation) when
    it takes two or more values there; values that only follow the model or the augmentation are not."""
    cells: dict[tuple, list[Record]] = {}
    for r in records:
        cells.setdefault(base_key(r), []).append(r)
    for runs in cells.values():
        keys = {k for r in runs for k in r.params if not k.startswith(NOT_SETTINGS)}
        swept = sorted(k for k in keys if len({param(r, k) for r in runs if param(r, k) is not None}) > 1)
        for r in runs:
            r.settings = {k: param(r, k) or "-" for k in swept}


# Options added after runs were logged: a run without the param ran with this value.
DEFAULT_WHEN_ABSENT = {"model.init_from": "None", **{k: str(v) for k, v in ADDED_OPTIONS.items()}}


def param(r: Record, key: str) -> str | None:
    """A run's value of a param; for an option added after the run was logged, the value it ran with."""
    return r.params.get(key, DEFAULT_WHEN_ABSENT.get(key))


def artifact(client: MlflowClient, run_id: str, name: str) -> str | None:
    """A local copy of one of the run's artifacts, or None where it cannot be read."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar (ours) for all runs
    try:
        return client.download_artifacts(run_id, name)
    except Exception:  # noqa: BLE001 - an artifact that cannot be read only leaves a plot or a row out
        return None


def confusion(client: MlflowClient, run_id: str) -> tuple[list[str], np.ndarray] | None:
    """The run's confusion matrix (rows true, columns predicted) from its confusion_matrix.csv."""
    text = artifact(client, run_id, "confusion_matrix.csv")
    if text is None:
        return None
    with open(text, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]])


def curves(client: MlflowClient, run_id: str) -> dict[str, dict[int, float]]:
    return {key: {m.step: m.value for m in client.get_metric_history(run_id, key)} for key in ("train/acc", "val/acc")}
