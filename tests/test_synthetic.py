"""The embedded synthetic corpus: layout, determinism, and a corpus that is learnable but not trivial."""

from __future__ import annotations

import numpy as np
import pytest

from ser_bench.data import ravdess, synthetic
from ser_bench.errors import UserError


def test_layout_and_names(tiny_manifest):
    assert len(tiny_manifest) == 24 * 8
    for u in tiny_manifest:
        assert u.path.parent.name == f"Actor_{u.actor:02d}"
        assert ravdess.parse_name(u.path).actor == u.actor
        assert u.gender == ("male" if u.actor % 2 else "female")
    assert {u.emotion for u in tiny_manifest} == set(ravdess.EMOTIONS)


def test_full_size_count_without_generating():
    names = list(synthetic._utterances(24, [1, 2], 2, 2))
    assert len(names) == 1440
    assert len({n.stem() for n in names}) == 1440
    assert not any(n.emotion == 1 and n.intensity == 2 for n in names)


def test_generation_is_deterministic_and_seeded(tmp_path, tiny_manifest):
    again = synthetic.load(tmp_path, seed=0, n_actors=2, intensities=[1], statements=1, repetitions=1)
    first = {u.utt_id: u for u in tiny_manifest}
    for u in again:
        assert u.path.read_bytes() == first[u.utt_id].path.read_bytes()
    other = synthetic.synthesize(1, 5, 1, 1, 1, seed=1)
    assert not np.array_equal(other, synthetic.synthesize(1, 5, 1, 1, 1, seed=0))


def test_emotion_cues_move_pitch_and_loudness():
    def rms(w):
        return float(np.sqrt(np.mean(w**2)))
    angry = np.mean([rms(synthetic.synthesize(a, 5, 2, 1, 1, 0)) for a in range(1, 13)])
    sad = np.mean([rms(synthetic.synthesize(a, 4, 2, 1, 1, 0)) for a in range(1, 13)])
    assert angry > 1.5 * sad


def test_bad_sizes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="n_actors"):
        synthetic.load(tmp_path, n_actors=30)


@pytest.mark.slow
def test_actor_disjoint_is_above_chance_below_ceiling_and_below_random(tmp_path):
    """The corpus behaves like acted speech: learnable, far from solved, and leaky under random splits.

    Probe: logistic regression on log-mel mean/std, 6 folds each way, 720 clips (about a minute).
    """
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ser_bench.data.cache import load_waveforms
    from ser_bench.models.frontends import LogMel

    manifest = synthetic.load(tmp_path, seed=0, statements=2, repetitions=1)
    waves = load_waveforms([u.path for u in manifest], tmp_path)
    logmel = LogMel(norm="none")
    feats = []
    for w in waves:
        f, _ = logmel(torch.tensor(np.asarray(w))[None], torch.tensor([len(w)]))
        feats.append(torch.cat([f[0].mean(1), f[0].std(1)]).numpy())
    X = np.array(feats)
    y = np.array([u.emotion for u in manifest])
    actors = np.array([u.actor for u in manifest])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    disjoint = cross_val_score(probe, X, y, cv=GroupKFold(6), groups=actors).mean()
    leaky = cross_val_score(probe, X, y, cv=StratifiedKFold(6, shuffle=True, random_state=0)).mean()
    assert 0.25 < disjoint < 0.8  # chance is 0.125
    assert leaky > disjoint + 0.03
