"""Actor-disjoint folds: disjoint parts, every actor tested exactly once, leaks labelled."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ser_bench.data import splits
from ser_bench.errors import UserError


@pytest.mark.parametrize("protocol, n_folds", [("emobox", 6), ("loso", 24)])
def test_each_actor_tested_exactly_once(tiny_manifest, protocol, n_folds):
    fn = getattr(splits, protocol)
    tested = Counter()
    for fold in range(n_folds):
        s = fn(tiny_manifest, fold=fold)
        assert not s.leaky
        assert not set(s.train_actors) & set(s.val_actors)
        assert not set(s.train_actors) & set(s.test_actors)
        assert not set(s.val_actors) & set(s.test_actors)
        assert len(s.train) + len(s.val) + len(s.test) == len(tiny_manifest)
        rows_actors = {part: {tiny_manifest[i].actor for i in getattr(s, part)} for part in ("train", "val", "test")}
        assert rows_actors["test"] == set(s.test_actors) and rows_actors["val"] == set(s.val_actors)
        genders = sorted(tiny_manifest[i].gender for i in s.val if tiny_manifest[i].actor == s.val_actors[0]) + \
            sorted(tiny_manifest[i].gender for i in s.val if tiny_manifest[i].actor == s.val_actors[1])
        assert set(genders) == {"male", "female"}
        tested.update(s.test_actors)
    assert tested == Counter(range(1, 25))


def test_emobox_folds_are_the_published_ones(tiny_manifest):
    assert splits.emobox(tiny_manifest, fold=0).test_actors == [1, 11, 20, 21]
    assert splits.emobox(tiny_manifest, fold=5).test_actors == [6, 13, 17, 22]


def test_val_actor_count_is_configurable(tiny_manifest):
    s = splits.emobox(tiny_manifest, fold=1, n_val_actors=4)
    assert len(s.val_actors) == 4
    assert Counter(a % 2 for a in s.val_actors) == Counter({0: 2, 1: 2})


def test_random_split_is_labelled_leaky_and_stratified(tiny_manifest):
    seen = []
    for fold in range(6):
        s = splits.random(tiny_manifest, fold=fold)
        assert s.leaky and s.protocol == "random"
        assert not set(s.train) & set(s.test) and not set(s.val) & set(s.test)
        seen.extend(s.test.tolist())
    assert sorted(seen) == list(range(len(tiny_manifest)))


def test_overlap_is_caught():
    bad = splits.Split("emobox", 0, np.array([0, 1]), np.array([2]), np.array([3]),
                       train_actors=[1, 2], val_actors=[2], test_actors=[3])
    with pytest.raises(AssertionError, match="actors overlap"):
        bad.check()


def test_bad_fold_and_missing_actors(tiny_manifest):
    with pytest.raises(UserError, match="folds 0-5"):
        splits.emobox(tiny_manifest, fold=6)
    few = [u for u in tiny_manifest if u.actor <= 6]
    with pytest.raises(UserError, match="lacks"):
        splits.emobox(few, fold=0)
