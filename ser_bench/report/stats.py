"""Groups of runs (one setting over folds and seeds), their statistics, ranks and paired tests."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st

from ser_bench.report.collect import Record, base_key, param

METRICS = ("test/ua", "test/wa", "test/macro_f1")
# Summarised per setting over folds: the test metrics, the best-epoch gap and the validation UA to select on.
SUMMARISED = (*METRICS, "best/gap_acc", "best/val_ua")
# Published figures on RAVDESS, 8 classes, EmoBox's 6 actor-disjoint folds (measured elsewhere).
REFERENCES = {("ravdess", "emobox"): [("EmoBox: frozen wav2vec2-base + head", 0.5433),
                                      ("EmoBox: frozen WavLM-base + head", 0.6156),
                                      ("EmoBox: frozen HuBERT-base + head", 0.6543),
                                      ("EmoBox: frozen Whisper-large-v3 + head", 0.7532)]}


@dataclass
class Group:
    corpus: str
    split: str
    model: str
    augment: str
    settings: dict[str, str]
    records: list[Record]
    expected_folds: int
    rank: int | None = None
    p_ttest: float | None = None
    p_wilcoxon: float | None = None
    per_fold: dict[str, dict[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric in SUMMARISED:
            by_fold: dict[int, list[float]] = {}
            for r in self.records:
                if metric in r.metrics:
                    by_fold.setdefault(r.fold, []).append(r.metrics[metric])
            self.per_fold[metric] = {f: float(np.mean(v)) for f, v in sorted(by_fold.items())}

    @property
    def label(self) -> str:
        # model.net.X set from model.X (${..X} in conf/model/*.yaml) says it once, as model.X
        shown = {k: v for k, v in self.settings.items()
                 if not (k.startswith("model.net.") and self.settings.get("model." + k[len("model.net."):]) == v)}
        extra = " ".join(f"{k}={v}" for k, v in shown.items())
        return (f"{self.model} + {self.augment}" + (f" ({extra})" if extra else "")
                + (" [TRANSDUCTIVE: test actors' audio]" if self.transductive else ""))

    @property
    def folds(self) -> list[int]:
        return sorted({r.fold for r in self.records})

    @property
    def seeds(self) -> list[str]:
        return sorted({r.seed for r in self.records}, key=lambda s: (len(s), s))

    @property
    def complete(self) -> bool:
        return self.folds == list(range(self.expected_folds))

    @property
    def leaky(self) -> bool:
        return any(r.leaky for r in self.records)

    @property
    def transductive(self) -> bool:
        return any(r.transductive for r in self.records)

    def summary(self, metric: str) -> tuple[float, float, float, float]:
        """Mean, std and 95% t-interval over folds (each fold first averaged over its seeds)."""
        return fold_summary(self.per_fold[metric])

    @property
    def val_actors(self) -> dict[int, str]:
        """Each fold's validation actors, as the runs logged them ("" where a run did not)."""
        return {r.fold: r.tags.get("actors.val", "") for r in self.records}

    @property
    def minutes(self) -> float:
        return float(np.mean([r.minutes for r in self.records]))

    @property
    def params(self) -> int | None:
        counts = [int(r.metrics["params"]) for r in self.records if "params" in r.metrics]
        return counts[0] if counts else None


def fold_summary(per_fold: dict[int, float]) -> tuple[float, float, float, float]:
    """Mean, sample std and 95% t-interval of one value per fold; nan where there are too few folds."""
    values = np.array(list(per_fold.values()))
    if not len(values):  # a metric that these runs did not log
        return math.nan, math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    half = float(st.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half


def expected_folds(r: Record) -> int:
    if "folds.total" in r.tags:  # logged since runs know their protocol's fold count
        return int(r.tags["folds.total"])
    if r.tags["split"] == "loso":
        return r.n_actors
    return int(r.params.get("split.n_folds", 6))


def build_groups(records: list[Record]) -> list[Group]:
    cells: dict[tuple, list[Record]] = {}
    for r in records:
        cells.setdefault((*base_key(r), tuple(r.settings.items())), []).append(r)
    return [Group(*key[:4], dict(key[4]), runs, max(expected_folds(r) for r in runs))
            for key, runs in sorted(cells.items())]


def sections(groups: list[Group]) -> dict[tuple[str, str], list[Group]]:
    """One table per (corpus, split protocol): only groups on the same folds are compared. Within a
    table, complete groups are ranked by mean test UA; incomplete and transductive ones (which used
    the test actors' audio) follow, unranked."""
    out: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        out.setdefault((g.corpus, g.split), []).append(g)
    for members in out.values():
        members.sort(key=lambda g: (not g.complete or g.transductive, -g.summary("test/ua")[0]))
        ranked = [g for g in members if g.complete and not g.leaky and not g.transductive]
        for i, g in enumerate(ranked, 1):
            g.rank = i
        if ranked:
            for g in ranked[1:]:
                g.p_ttest, g.p_wilcoxon = paired_test(ranked[0], g)
    return out


def paired_test(leader: Group, other: Group, metric: str = "test/ua") -> tuple[float | None, float | None]:
    """Two-sided paired t-test and Wilcoxon signed-rank test over the folds both groups have."""
    folds = sorted(set(leader.per_fold[metric]) & set(other.per_fold[metric]))
    if len(folds) < 2:
        return None, None
    a = np.array([leader.per_fold[metric][f] for f in folds])
    b = np.array([other.per_fold[metric][f] for f in folds])
    diff = a - b
    if np.allclose(diff, 0):
        return 1.0, 1.0
    with warnings.catch_warnings():  # a near-constant difference is legitimate; scipy only warns about precision
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(st.ttest_rel(a, b).pvalue), float(st.wilcoxon(a, b).pvalue)


def leakage(groups: list[Group]) -> list[tuple[Group, Group]]:
    """(random-split group, actor-disjoint group) pairs of one corpus, model and augmentation whose runs
    agree on every setting that either side's table varies, split options aside (a random split has no
    validation actors); among several, `emobox` first, then the one with the most runs."""
    def value(g: Group, key: str) -> str:
        return g.settings.get(key) or param(g.records[0], key) or "-"

    def agree(leaky: Group, honest: Group) -> bool:
        keys = {k for k in (*leaky.settings, *honest.settings) if not k.startswith("split.")}
        return all(value(leaky, k) == value(honest, k) for k in keys)

    honest = sorted((g for g in groups if not g.leaky and not g.transductive),
                    key=lambda g: (g.split != "emobox", -len(g.records)))
    pairs = []
    for g in groups:
        if g.leaky:
            match = next((h for h in honest if (h.corpus, h.model, h.augment) == (g.corpus, g.model, g.augment)
                          and agree(g, h)), None)
            if match is not None:
                pairs.append((g, match))
    return pairs


def validation_marks(groups: list[Group]) -> dict[int, str]:
    """id(group) -> "V1", "V2", ...: which validation actors a group's val UA was measured on, where the
    groups of one table used different ones (e.g. another split.n_val_actors); {} where all share them.
    Groups agree when every fold both have validated on the same actors."""
    classes: list[dict[int, str]] = []
    marks = {}
    for g in groups:
        own = g.val_actors
        index = next((i for i, seen in enumerate(classes)
                      if all(seen[f] == a for f, a in own.items() if f in seen)), len(classes))
        if index == len(classes):
            classes.append({})
        classes[index].update(own)
        marks[id(g)] = f"V{index + 1}"
    return marks if len(classes) > 1 else {}


def baselines(class_totals: np.ndarray | None, n_classes: int) -> list[tuple[str, float, float]]:
    """(name, UA, WA): chance, and always predicting the class most frequent in the test sets."""
    rows = [("chance (uniform guess)", 1 / n_classes, 1 / n_classes)]
    if class_totals is not None and class_totals.sum():
        rows.append(("majority class (most frequent in the test sets)", 1 / n_classes,
                     float(class_totals.max() / class_totals.sum())))
    return rows
