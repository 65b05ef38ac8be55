"""Train / validation / test partitions. Actor-disjoint unless the protocol is `random` (leaky).

Each protocol is a function `(manifest, fold, ...) -> Split`, built by Hydra with `_partial_: true`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedShuffleSplit

from ser_bench.data.manifest import Utterance, actors_of
from ser_bench.errors import UserError

# EmoBox's six RAVDESS test folds (actor ids), so results compare with its published table.
EMOBOX_FOLDS: tuple[tuple[int, ...], ...] = (
    (1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18), (6, 13, 17, 22),
)


@dataclass
class Split:
    """Row indices into the manifest for each part, with the actors behind them."""

    protocol: str
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_actors: list[int] = field(default_factory=list)
    val_actors: list[int] = field(default_factory=list)
    test_actors: list[int] = field(default_factory=list)
    leaky: bool = False

    def check(self) -> None:
        """Parts never share an utterance; actor-disjoint protocols never share an actor."""
        parts = {"train": set(self.train.tolist()), "val": set(self.val.tolist()), "test": set(self.test.tolist())}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            if parts[a] & parts[b]:
                raise AssertionError(f"{self.protocol} fold {self.fold}: {a} and {b} share utterances")
        for name, rows in parts.items():
            if not rows:
                raise UserError(f"{self.protocol} fold {self.fold}: the {name} part is empty; the corpus is too small")
        if not self.leaky:
            tr, va, te = set(self.train_actors), set(self.val_actors), set(self.test_actors)
            if tr & va or tr & te or va & te:
                raise AssertionError(f"{self.protocol} fold {self.fold}: actors overlap between parts")

    def describe(self) -> dict:
        return {"protocol": self.protocol, "fold": self.fold, "leaky": self.leaky,
                "train_actors": self.train_actors, "val_actors": self.val_actors, "test_actors": self.test_actors,
                "n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def pick_val_actors(candidates: dict[int, str], n_val_actors: int, fold: int, seed: int) -> list[int]:
    """Validation actors from the non-test ones, alternating male and female (one each by default)."""
    if n_val_actors < 1:
        raise UserError("split.n_val_actors must be at least 1")
    rng = np.random.default_rng([seed, fold])
    by_gender = {g: [a for a, gg in candidates.items() if gg == g] for g in ("male", "female")}
    for pool in by_gender.values():
        rng.shuffle(pool)
    chosen: list[int] = []
    order = ["male", "female"]
    while len(chosen) < n_val_actors and any(by_gender.values()):
        g = order[len(chosen) % 2]
        pool = by_gender[g] or by_gender[order[(len(chosen) + 1) % 2]]
        chosen.append(pool.pop())
    if len(chosen) < n_val_actors or len(chosen) >= len(candidates):
        raise UserError(f"cannot take {n_val_actors} validation actors from {len(candidates)} non-test actors")
    return sorted(chosen)


def _by_actors(manifest: list[Utterance], protocol: str, fold: int, test_actors: list[int],
               n_val_actors: int, seed: int) -> Split:
    actors = actors_of(manifest)
    missing = [a for a in test_actors if a not in actors]
    if missing:
        raise UserError(f"split={protocol} fold {fold} tests actors {test_actors}, but the corpus lacks {missing}")
    rest = {a: g for a, g in actors.items() if a not in test_actors}
    val_actors = pick_val_actors(rest, n_val_actors, fold, seed)
    train_actors = sorted(a for a in rest if a not in val_actors)
    actor_col = np.array([u.actor for u in manifest])
    split = Split(
        protocol=protocol, fold=fold,
        train=np.flatnonzero(np.isin(actor_col, train_actors)),
        val=np.flatnonzero(np.isin(actor_col, val_actors)),
        test=np.flatnonzero(np.isin(actor_col, test_actors)),
        train_actors=train_actors, val_actors=val_actors, test_actors=sorted(test_actors),
    )
    split.check()
    return split


def emobox(manifest: list[Utterance], fold: int = 0, n_val_actors: int = 2, seed: int = 0) -> Split:
    """EmoBox's fixed RAVDESS folds (6): four test actors each."""
    if not 0 <= fold < len(EMOBOX_FOLDS):
        raise UserError(f"split=emobox has folds 0-{len(EMOBOX_FOLDS) - 1}, not split.fold={fold}")
    return _by_actors(manifest, "emobox", fold, list(EMOBOX_FOLDS[fold]), n_val_actors, seed)


def loso(manifest: list[Utterance], fold: int = 0, n_val_actors: int = 2, seed: int = 0) -> Split:
    """Leave one speaker out: fold K tests the K-th actor (sorted by id)."""
    actors = list(actors_of(manifest))
    if not 0 <= fold < len(actors):
        raise UserError(f"split=loso has folds 0-{len(actors) - 1} for this corpus, not split.fold={fold}")
    return _by_actors(manifest, "loso", fold, [actors[fold]], n_val_actors, seed)


def random(manifest: list[Utterance], fold: int = 0, n_folds: int = 6, val_fraction: float = 0.1,
           seed: int = 0) -> Split:
    """Utterance-level split, stratified by emotion. LEAKY: the same actors train and test.

    Only for measuring how much speaker leakage inflates accuracy; never a headline number.
    """
    if not 0 <= fold < n_folds:
        raise UserError(f"split=random has folds 0-{n_folds - 1}, not split.fold={fold}")
    labels = np.array([u.emotion for u in manifest])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(manifest))
    # Stratified assignment of every utterance to one of n_folds test folds.
    fold_of = np.empty(len(manifest), dtype=int)
    for emotion in np.unique(labels):
        idx = order[labels[order] == emotion]
        fold_of[idx] = np.arange(len(idx)) % n_folds
    test = np.flatnonzero(fold_of == fold)
    rest = np.flatnonzero(fold_of != fold)
    sss = StratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed + fold)
    tr, va = next(sss.split(rest, labels[rest]))
    everyone = sorted(actors_of(manifest))
    split = Split(protocol="random", fold=fold, train=np.sort(rest[tr]), val=np.sort(rest[va]), test=test,
                  train_actors=everyone, val_actors=everyone, test_actors=everyone, leaky=True)
    split.check()
    return split
