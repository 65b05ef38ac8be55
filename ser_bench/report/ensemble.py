"""Ensembles: runs on the same fold, their test-clip probabilities averaged clip by clip.

A seed ensemble: a complete setting run with two or more seeds on every fold gets an ensemble row;
its seeds' probabilities are averaged. A settings ensemble: settings the user names (`python -m
ser_bench.report --ensemble "A | B"`), e.g. a 1D and a 2D CNN, each with all the seeds it has on
every fold: each setting's seeds are averaged first, then the settings with equal weight. The
probabilities are those each member run logged (`predictions.csv`, from its best-validation
checkpoint), and UA, WA and macro-F1 are scored on the average. Each member was chosen on
validation actors as usual and the ensemble makes no choice of its own. Runs that also logged
their validation clips' probabilities (`val_predictions.csv`, same checkpoint) give the ensemble a
validation UA of its own, scored alike: the figure to choose an ensemble on. An ensemble costs as
many trainings as it has member runs; the report says so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser_bench.errors import UserError
from ser_bench.report.collect import Record
from ser_bench.report.stats import METRICS, Group, fold_summary


@dataclass
class Ensemble:
    groups: list[Group]  # one (a seed ensemble) or several (a settings ensemble)
    seeds: list[list[str]]  # per group, the seeds it contributes on every fold
    per_fold: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> fold -> ensemble value
    members: dict[int, float] = field(default_factory=dict)  # fold -> the members' own test UA (weighted alike)
    val_ua: dict[int, float] = field(default_factory=dict)  # fold -> the ensemble's validation UA (where logged)

    @property
    def label(self) -> str:
        return " & ".join(g.label for g in self.groups)

    @property
    def trainings(self) -> int:
        """Trainings per fold."""
        return sum(map(len, self.seeds))

    def summary(self, metric: str) -> tuple[float, float]:
        """Mean and sample std over folds of the ensemble's `metric`."""
        return fold_summary(self.per_fold[metric])[:2]

    @property
    def members_ua(self) -> float:
        return float(np.mean(list(self.members.values())))

    @property
    def members_val_ua(self) -> float:
        """The members' own validation UA, averaged (each group's mean over folds and seeds)."""
        return float(np.mean([g.summary("best/val_ua")[0] for g in self.groups]))

    @property
    def ensemble_val_ua(self) -> float | None:
        """Mean over folds of the ensemble's validation UA; None unless every fold's members logged it."""
        return float(np.mean(list(self.val_ua.values()))) if len(self.val_ua) == len(self.members) else None


def on_own_validation(ensembles: list[Ensemble]) -> bool:
    """Whether to choose among `ensembles` on their own validation UA (every one has it) or, where some runs
    predate val_predictions.csv, on the members' validation UA, so that all are compared on one figure."""
    return all(e.ensemble_val_ua is not None for e in ensembles)


def by_validation(ensembles: list[Ensemble]) -> list[Ensemble]:
    """The ensembles in the order to choose from: highest validation UA (the figure `on_own_validation` picks)
    first, ties to fewer trainings per fold. Test UA never enters."""
    own = on_own_validation(ensembles)
    return sorted(ensembles, key=lambda e: (-round(e.ensemble_val_ua if own else e.members_val_ua, 9), e.trainings))


def read_predictions(path: str) -> tuple[list[str], dict[str, tuple[str, np.ndarray]]]:
    """(class names, {utt_id: (true class, probabilities)}) from a run's predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [k[2:] for k in (rows[0] if rows else {}) if k.startswith("p_")]
    return classes, {r["utt_id"]: (r["true"], np.array([float(r[f"p_{c}"]) for c in classes])) for r in rows}


def average(members: list[dict[str, tuple[str, np.ndarray]]]) -> dict[str, tuple[str, np.ndarray]] | None:
    """{utt_id: (true class, the members' mean probabilities)}; None when they did not score the same clips."""
    clips = sorted(members[0])
    if not clips or any(sorted(m) != clips for m in members[1:]):
        return None
    return {u: (members[0][u][0], np.mean([m[u][1] for m in members], axis=0)) for u in clips}


def score(classes: list[str], members: list[dict[str, tuple[str, np.ndarray]]]) -> dict[str, float] | None:
    """The metrics of the members' averaged probabilities; None when they did not test the same clips."""
    mean = average(members)
    if mean is None:
        return None
    index = {c: i for i, c in enumerate(classes)}
    truth = np.array([index[label] for label, _ in mean.values()])
    pred = np.array([p for _, p in mean.values()]).argmax(1)
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
        if g.complete and not g.leaky and len(_seeds(g)) >= 2:
            if (ensemble := ensemble_of([g], fetch)) is not None:
                out.append(ensemble)
    return out


def settings_ensembles(groups: list[Group], specs: list[str], fetch) -> list[Ensemble]:
    """An Ensemble per spec "A | B | ...": each part names one complete, honest setting by a piece of its
    leaderboard label (the whole label where a piece fits several). Each setting takes part with all its seeds
    that every fold has. A spec that names no setting, several, or settings on different folds is a
    UserError; one whose runs lack predictions gets no row."""
    out = []
    for spec in specs:
        chosen = [_one_setting(groups, part.strip(), spec) for part in spec.split("|") if part.strip()]
        if len(chosen) < 2 or len({id(g) for g in chosen}) < len(chosen):
            raise UserError(f"--ensemble {spec!r}: name two or more different settings, separated by '|'")
        if len({(g.corpus, g.split, g.expected_folds) for g in chosen}) > 1:
            raise UserError(f"--ensemble {spec!r}: the settings were not run on the same corpus and folds")
        if (ensemble := ensemble_of(chosen, fetch)) is not None:
            out.append(ensemble)
    return out


def leaky_twins(ensembles: list[Ensemble], twin_of: dict[int, Group], fetch) -> list[tuple[Ensemble, Ensemble]]:
    """(leaky ensemble, actor-disjoint ensemble) for each settings ensemble whose every setting was also run on
    the leaky random split (`twin_of`: id(actor-disjoint group) -> its random-split group, from stats.leakage),
    on the same folds: the same ensemble of those runs, scored alike, to measure its leakage gap."""
    out = []
    for e in ensembles:
        twins = [twin_of.get(id(g)) for g in e.groups]
        if (any(t is None for t in twins) or len({id(t) for t in twins}) < len(twins)
                or len({tuple(t.folds) for t in twins}) > 1):
            continue  # not every setting on the random split, two sharing one twin, or different folds
        if (leaky := ensemble_of(twins, fetch)) is not None:
            out.append((leaky, e))
    return out


def _one_setting(groups: list[Group], part: str, spec: str) -> Group:
    usable = [g for g in groups if g.complete and not g.leaky]
    exact = [g for g in usable if g.label == part]
    found = exact or [g for g in usable if part in g.label]
    if len(found) != 1:
        listed = "; ".join(g.label for g in (found or usable)) or "none"
        raise UserError(f"--ensemble {spec!r}: {part!r} names {len(found) or 'no'} complete setting"
                        f"{'' if len(found) == 1 else 's'} ({'matches' if found else 'complete settings'}: {listed})")
    return found[0]


def _seeds(g: Group) -> list[str]:
    """The group's seeds that every fold has."""
    per_fold = [{r.seed for r in g.records if r.fold == f} for f in g.folds]
    return sorted(set.intersection(*per_fold), key=lambda s: (len(s), s)) if per_fold else []


def ensemble_of(groups: list[Group], fetch) -> Ensemble | None:
    """Score the groups' runs per fold; None where a member's predictions are missing or do not match."""
    seeds = [_seeds(g) for g in groups]
    if not all(seeds):
        return None
    ensemble = Ensemble(groups, seeds, {m: {} for m in METRICS})
    for fold in groups[0].folds:
        members = []  # per group, its runs on this fold
        for g, own in zip(groups, seeds):
            first: dict[str, Record] = {}
            for r in g.records:
                if r.fold == fold:
                    first.setdefault(r.seed, r)  # a seed run twice on a fold: its first record
            members.append([first[s] for s in own])
        values = _averaged(members, "predictions.csv", fetch)
        if values is None:
            return None
        for metric, value in values.items():
            ensemble.per_fold[metric][fold] = value
        ensemble.members[fold] = float(np.mean([np.mean([r.metrics["test/ua"] for r in runs]) for runs in members]))
        if (val := _averaged(members, "val_predictions.csv", fetch)) is not None:
            ensemble.val_ua[fold] = val["test/ua"]
    return ensemble


def _averaged(members: list[list[Record]], name: str, fetch) -> dict[str, float] | None:
    """The metrics of the averaged probabilities in artifact `name` (each group's runs averaged, then the groups);
    None where a run lacks it or they disagree on classes or clips."""
    paths = [[fetch(r.run_id, name) for r in runs] for runs in members]
    if any(p is None for group in paths for p in group):
        return None
    read = [[read_predictions(p) for p in group] for group in paths]
    classes = read[0][0][0]
    if any(c != classes for group in read for c, _ in group):
        return None
    merged = [average([preds for _, preds in group]) for group in read]
    return None if any(m is None for m in merged) else score(classes, merged)
