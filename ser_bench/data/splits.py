"""Train / validation / test partitions. Actor-disjoint unless the protocol is `random` (leaky).

Each protocol is a function `(manifest, fold, ...) -> Split`, built by Hydra with `_partial_: true`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from ser_bench.data.manifest import Utterance, actors_of, speaker_order
from ser_bench.errors import UserError

log = logging.getLogger(__name__)

VAL_MODES = ("speakers", "utterances")
VAL_FRACTION = 0.1  # split.val=utterances: the share of the training speakers' clips held out for validation

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
    n_folds: int = 1  # folds the protocol has (the report needs all of them to rank a setting)
    note: str = ""  # anything a reader of the split must know (e.g. how validation was carved)
    train_corpora: list[str] = field(default_factory=list)
    test_corpora: list[str] = field(default_factory=list)
    val_by: str = "speakers"  # or "utterances": held-out clips of the training speakers (split.val)

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
            if (tr & va and self.val_by == "speakers") or tr & te or va & te:
                raise AssertionError(f"{self.protocol} fold {self.fold}: actors overlap between parts")

    def name_corpora(self, manifest: list[Utterance]) -> None:
        self.train_corpora = sorted({manifest[r].corpus for r in np.concatenate([self.train, self.val])})
        self.test_corpora = sorted({manifest[r].corpus for r in self.test})

    @property
    def corpus(self) -> str:
        """`ravdess`, or `synthetic→ravdess` for a cross-corpus split."""
        train, test = "+".join(self.train_corpora), "+".join(self.test_corpora)
        return train if train == test else f"{train}→{test}"

    def describe(self) -> dict:
        return {"protocol": self.protocol, "fold": self.fold, "n_folds": self.n_folds, "leaky": self.leaky,
                "note": self.note, "val_by": self.val_by, "corpus": self.corpus, "train_corpora": self.train_corpora,
                "test_corpora": self.test_corpora,
                "train_actors": self.train_actors, "val_actors": self.val_actors, "test_actors": self.test_actors,
                "n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def pick_val_actors(candidates: dict[int, str], n_val_actors: int, fold: int, seed: int) -> list[int]:
    """Validation actors from the non-test ones, alternating male and female (one each by default).

    Speakers of unknown gender (a corpus that does not say) take turns as a third group.
    """
    if n_val_actors < 1:
        raise UserError("split.n_val_actors must be at least 1")
    rng = np.random.default_rng([seed, fold])
    order = ["male", "female"] + sorted({g for g in candidates.values()} - {"male", "female"})
    by_gender = {g: sorted((a for a, gg in candidates.items() if gg == g), key=speaker_order) for g in order}
    for pool in by_gender.values():
        rng.shuffle(pool)
    order = [g for g in order if by_gender[g]]
    chosen: list = []
    while len(chosen) < n_val_actors and any(by_gender.values()):
        turn = len(chosen)
        pool = next(by_gender[g] for g in order[turn % len(order):] + order if by_gender[g])
        chosen.append(pool.pop())
    if len(chosen) < n_val_actors or len(chosen) >= len(candidates):
        raise UserError(f"cannot take {n_val_actors} validation actors from {len(candidates)} non-test actors: "
                        f"lower split.n_val_actors, or validate on held-out clips of the training speakers with "
                        f"split.val=utterances")
    return sorted(chosen, key=speaker_order)


def _by_actors(manifest: list[Utterance], protocol: str, fold: int, test_actors: list,
               n_val_actors: int, seed: int, n_folds: int, val: str = "speakers") -> Split:
    actors = actors_of(manifest)
    missing = [a for a in test_actors if a not in actors]
    if missing:
        raise UserError(f"split={protocol} fold {fold} tests actors {test_actors}, but the corpus lacks {missing}")
    in_test = np.isin(np.array([u.actor for u in manifest]), test_actors)
    train, val_rows, train_actors, val_actors = _carve_val(manifest, np.flatnonzero(~in_test), lambda u: u.actor,
                                                           n_val_actors, fold, seed, val)
    split = Split(protocol=protocol, fold=fold, n_folds=n_folds, train=train, val=val_rows,
                  test=np.flatnonzero(in_test), train_actors=train_actors, val_actors=val_actors,
                  test_actors=sorted(test_actors), val_by=val, note=VAL_NOTE if val == "utterances" else "")
    split.check()
    return split


def emobox(manifest: list[Utterance], fold: int = 0, n_val_actors: int = 2, seed: int = 0,
           val: str = "speakers") -> Split:
    """EmoBox's fixed RAVDESS folds (6): four test actors each."""
    if not 0 <= fold < len(EMOBOX_FOLDS):
        raise UserError(f"split=emobox has folds 0-{len(EMOBOX_FOLDS) - 1}, not split.fold={fold}")
    return _by_actors(manifest, "emobox", fold, list(EMOBOX_FOLDS[fold]), n_val_actors, seed, len(EMOBOX_FOLDS),
                      val)


def loso(manifest: list[Utterance], fold: int = 0, n_val_actors: int = 2, seed: int = 0,
         val: str = "speakers") -> Split:
    """Leave one speaker out: fold K tests the K-th actor (sorted by id)."""
    actors = list(actors_of(manifest))
    if not 0 <= fold < len(actors):
        raise UserError(f"split=loso has folds 0-{len(actors) - 1} for this corpus, not split.fold={fold}")
    return _by_actors(manifest, "loso", fold, [actors[fold]], n_val_actors, seed, len(actors), val)


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
                  train_actors=everyone, val_actors=everyone, test_actors=everyone, leaky=True, n_folds=n_folds)
    split.check()
    return split


VAL_NOTE = (f"validation: {VAL_FRACTION:.0%} of the training speakers' clips (split.val=utterances), not "
            f"speaker-independent; the test speakers stay unseen")


def _carve_val(manifest: list[Utterance], rows: np.ndarray, speaker, n_val_actors: int, fold: int,
               seed: int, val: str = "speakers") -> tuple[np.ndarray, np.ndarray, list, list]:
    """Split training rows into train and validation by speaker: (train, val, train speakers, val speakers).

    `val="utterances"` is the stated fallback for a corpus with too few speakers (TESS has two): validation is a
    stratified share of the training speakers' clips, so model selection is not speaker-independent, while the
    test speakers stay unseen."""
    if val not in VAL_MODES:
        raise UserError(f"split.val={val}: must be one of {', '.join(VAL_MODES)}")
    if val == "utterances":
        labels = np.array([manifest[r].emotion for r in rows])
        try:
            tr, va = next(StratifiedShuffleSplit(n_splits=1, test_size=VAL_FRACTION, random_state=seed + fold)
                          .split(rows, labels))
        except ValueError:  # too few clips per emotion to stratify: a plain shuffled share
            tr, va = next(ShuffleSplit(n_splits=1, test_size=VAL_FRACTION, random_state=seed + fold).split(rows))
        speakers = sorted({speaker(manifest[r]) for r in rows}, key=speaker_order)
        return np.sort(rows[tr]), np.sort(rows[va]), speakers, speakers
    genders = {speaker(manifest[r]): manifest[r].gender for r in rows}
    val = pick_val_actors(genders, n_val_actors, fold, seed)
    in_val = np.isin(np.array([speaker(manifest[r]) for r in rows]), val)
    return rows[~in_val], rows[in_val], sorted(set(genders) - set(val), key=speaker_order), val


def cross(manifest: list[Utterance], test_corpus: str | None = None, fold: int = 0, n_val_actors: int = 2,
          seed: int = 0, val: str = "speakers") -> Split:
    """Cross-corpus: train (and pick validation speakers) on the training corpora, test on every speaker
    of `test_corpus` (eval_data). Speakers are `corpus:actor`, so ids repeated across corpora stay apart."""
    if not test_corpus:
        raise UserError("split=cross needs the corpus to test on: eval_data=NAME eval_data.root=PATH")
    if fold != 0:
        raise UserError(f"split=cross has one fold (0), not split.fold={fold}")
    corpus = np.array([u.corpus for u in manifest])
    test = np.flatnonzero(corpus == test_corpus)
    rest = np.flatnonzero(corpus != test_corpus)
    if not len(rest):
        raise UserError(f"split=cross: nothing to train on besides the test corpus {test_corpus}; the training "
                        f"corpus (data=...) must be another one")
    train, val_rows, train_speakers, val_speakers = _carve_val(manifest, rest, lambda u: u.speaker, n_val_actors,
                                                               0, seed, val)
    split = Split(protocol="cross", fold=0, train=train, val=val_rows, test=test, train_actors=train_speakers,
                  val_actors=val_speakers, test_actors=sorted({manifest[r].speaker for r in test}), n_folds=1,
                  val_by=val, note=VAL_NOTE if val == "utterances" else "")
    split.check()
    return split


def manifest(manifest: list[Utterance], metadata: str | None = None, fold: int = 0, n_val_actors: int = 2,
             seed: int = 0, val: str = "speakers") -> Split:
    """EmoBox's published folds: `METADATA/fold_K/*_train_fold_K.jsonl` and `*_test_fold_K.jsonl`, K = fold + 1.

    Validation speakers are carved from the train fold. Where speakers cannot be read (the corpus has
    no adapter and no data.speaker_pattern), validation is a stratified 10% of the train fold's
    utterances instead, and the split says so. A fold whose train and test share speakers is LEAKY.
    """
    from ser_bench.data import emobox

    if metadata is None:
        raise UserError("split=manifest reads EmoBox's fold files: use it with data=manifest data.metadata=PATH")
    folds = emobox.fold_files(metadata)
    if not 0 <= fold < len(folds):
        raise UserError(f"split=manifest: {metadata} has folds 0-{len(folds) - 1} (fold_1 ... fold_{len(folds)}), "
                        f"not split.fold={fold}")
    train_keys, test_keys = (emobox.keys(p) for p in folds[fold])
    row = {u.utt_id: i for i, u in enumerate(manifest)}
    train_rows = np.array(sorted(row[k] for k in train_keys if k in row), dtype=int)
    test = np.array(sorted(row[k] for k in test_keys if k in row), dtype=int)
    missing = len([k for k in (*train_keys, *test_keys) if k not in row])
    if missing:
        log.info("split=manifest fold %d: %d listed clips are not in the manifest (dropped by labels=, or "
                 "missing)", fold, missing)
    test_speakers = sorted({manifest[r].actor for r in test}, key=speaker_order)
    common = dict(protocol="manifest", fold=fold, test=test, test_actors=test_speakers, n_folds=len(folds))
    if any(manifest[r].actor == emobox.UNKNOWN for r in train_rows):
        labels = np.array([manifest[r].emotion for r in train_rows])
        tr, va = next(StratifiedShuffleSplit(n_splits=1, test_size=0.1, random_state=seed + fold)
                      .split(train_rows, labels))
        split = Split(train=np.sort(train_rows[tr]), val=np.sort(train_rows[va]), train_actors=[emobox.UNKNOWN],
                      val_actors=[emobox.UNKNOWN], leaky=True,
                      note="speakers unknown: validation is 10% of the train fold's utterances, and speaker "
                           "independence cannot be checked", **common)
        log.warning("split=manifest: speakers cannot be read for this corpus (set data.speaker_pattern); "
                    "validation is carved by utterance and the run is marked leaky")
    else:
        train, val_rows, train_speakers, val_speakers = _carve_val(manifest, train_rows, lambda u: u.actor,
                                                                   n_val_actors, fold, seed, val)
        shared = set(train_speakers + val_speakers) & set(test_speakers)
        split = Split(train=train, val=val_rows, train_actors=train_speakers, val_actors=val_speakers,
                      leaky=bool(shared), note=f"train and test share speakers {sorted(shared, key=str)[:5]}"
                      if shared else VAL_NOTE if val == "utterances" else "", val_by=val, **common)
        if shared:
            log.warning("split=manifest fold %d: the published folds share %d speakers between train and test; "
                        "the run is marked leaky", fold, len(shared))
    split.check()
    return split
