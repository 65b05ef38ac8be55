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
