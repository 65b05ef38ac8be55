"""Seed ensembles: one setting's runs on a fold, their test-clip probabilities averaged.

A complete setting run with two or more seeds on every fold gets an ensemble row. Per fold, the
class probabilities that its seeds' runs logged (`predictions.csv`, from each run's
best-validation checkpoint) are averaged clip by clip, and UA, WA and macro-F1 are scored on the
average. Each member was chosen on validation actors as usual and the ensemble makes no choice of
its own. Runs that also logged their validation clips' probabilities (`val_predictions.csv`, same
checkpoint) give the ensemble a validation UA of its own, scored alike: the figure to choose an
ensemble on. An ensemble costs as many trainings as it has seeds; the report says so by listing them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser_bench.report.collect import Record
from ser_bench.report.stats import METRICS, Group, fold_summary


@dataclass
class Ensemble:
    group: Group
    seeds: list[str]
    per_fold: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> fold -> ensemble value
    members: dict[int, float] = field(default_factory=dict)  # fold -> mean test UA of the members alone
    val_ua: dict[int, float] = field(default_factory=dict)  # fold -> the ensemble's validation UA (where logged)

    def summary(self, metric: str) -> tuple[float, float]:
        """Mean and sample std over folds of the ensemble's `metric`."""
        return fold_summary(self.per_fold[metric])[:2]

    @property
    def members_ua(self) -> float:
        return float(np.mean(list(self.members.values())))

    @property
    def ensemble_val_ua(self) -> float | None:
        """Mean over folds of the ensemble's validation UA; None unless every fold's members logged it."""
        return float(np.mean(list(self.val_ua.values()))) if len(self.val_ua) == len(self.members) else None


def read_predictions(path: str) -> tuple[list[str], dict[str, tuple[str, np.ndarray]]]:
    """(class names, {utt_id: (true class, probabilities)}) from a run's predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [k[2:] for k in (rows[0] if rows else {}) if k.startswith("p_")]
    return classes, {r["utt_id"]: (r["true"], np.array([float(r[f"p_{c}"]) for c in classes])) for r in rows}


def score(classes: list[str], members: list[dict[str, tuple[str, np.ndarray]]]) -> dict[str, float] | None:
    """The metrics of the members' averaged probabilities; None when they did not test the same clips."""
    clips = sorted(members[0])
    if not clips or any(sorted(m) != clips for m in members[1:]):
        return None
    index = {c: i for i, c in enumerate(classes)}
    truth = np.array([index[members[0][u][0]] for u in clips])
    pred = np.mean([[m[u][1] for u in clips] for m in members], axis=0).argmax(1)
    return {"test/ua": float(balanced_accuracy_score(truth, pred)), "test/wa": float(accuracy_score(truth, pred)),
            "test/macro_f1": float(f1_score(truth, pred, average="macro", labels=range(len(classes)),
                                            zero_division=0))}


def seed_ensembles(groups: list[Group], fetch) -> list[Ensemble]:
    """An Ensemble per complete, honest group with 2+ seeds on every fold whose runs all logged predictions.

    `fetch(run_id, name)`: the local path of that run's artifact `name` (predictions.csv,
    val_predictions.csv), or None.
    """
    out = []
    for g in groups:
        if not g.complete or g.leaky:
            continue
        by_fold: dict[int, dict[str, Record]] = {}
        for r in g.records:
            by_fold.setdefault(r.fold, {}).setdefault(r.seed, r)  # a seed run twice on a fold: its first record
        seeds = sorted(set.intersection(*(set(runs) for runs in by_fold.values())), key=lambda s: (len(s), s))
        if len(seeds) < 2:
            continue
        ensemble = Ensemble(g, seeds, {m: {} for m in METRICS})
        for fold, runs in sorted(by_fold.items()):
            members = [runs[s] for s in seeds]
            values = _averaged(members, "predictions.csv", fetch)
            if values is None:
                break
            for metric, value in values.items():
                ensemble.per_fold[metric][fold] = value
            ensemble.members[fold] = float(np.mean([r.metrics["test/ua"] for r in members]))
            if (val := _averaged(members, "val_predictions.csv", fetch)) is not None:
                ensemble.val_ua[fold] = val["test/ua"]
        else:
            out.append(ensemble)
    return out


def _averaged(members: list[Record], name: str, fetch) -> dict[str, float] | None:
    """The metrics of the members' averaged probabilities in artifact `name`; None where one lacks it or they
    disagree on classes or clips."""
    paths = [fetch(r.run_id, name) for r in members]
    if any(p is None for p in paths):
        return None
    read = [read_predictions(p) for p in paths]
    classes = read[0][0]
    return score(classes, [preds for _, preds in read]) if all(c == classes for c, _ in read) else None
