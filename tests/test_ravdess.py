"""RAVDESS names, layout, audio decoding and the errors a user can hit."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_bench.data import ravdess
from ser_bench.data.audio import read_audio
from ser_bench.errors import UserError

from .conftest import REAL_RAVDESS, write_wav


def test_parse_name_reads_all_seven_fields():
    name = ravdess.parse_name("Actor_12/03-01-05-02-01-02-12.wav")
    assert (name.modality, name.channel, name.emotion, name.intensity, name.statement, name.repetition,
            name.actor) == (3, 1, 5, 2, 1, 2, 12)
    assert name.emotion_name == "angry"
    assert name.gender == "female"
    assert ravdess.parse_name("03-01-08-01-01-01-07.flac").emotion_name == "surprised"
    assert ravdess.parse_name("03-01-08-01-01-01-07.flac").gender == "male"
    assert name.stem() == "03-01-05-02-01-02-12"


@pytest.mark.parametrize("bad, why", [
    ("03-01-05-02-01-02.wav", "not a RAVDESS name"),
    ("angry_clip.wav", "not a RAVDESS name"),
    ("03-01-09-01-01-01-01.wav", "emotion 09"),
    ("03-01-01-02-01-01-01.wav", "neutral has no strong"),
    ("03-01-05-01-01-01-25.wav", "actor 25"),
    ("03-03-05-01-01-01-02.wav", "vocal channel 03"),
    ("03-01-05-03-01-01-02.wav", "intensity 03"),
])
def test_bad_names_are_named_in_the_error(bad, why):
    with pytest.raises(UserError, match=why) as err:
        ravdess.parse_name(bad)
    assert bad in str(err.value)


def test_scan_builds_manifest_and_resamples_48k_stereo(tmp_path):
    root = tmp_path / "ravdess"
    write_wav(root / "Actor_01" / "03-01-05-02-01-02-01.wav", actor=1, emotion=5, channels=2)
    write_wav(root / "Actor_02" / "03-01-04-01-02-01-02.wav", actor=2, emotion=4)
    (root / "README.txt").write_text("not audio")
    manifest = ravdess.scan(root)
    assert [(u.actor, u.gender, u.emotion, u.intensity, u.statement, u.repetition) for u in manifest] == [
        (1, "male", "angry", 2, 1, 2), (2, "female", "sad", 1, 2, 1)]
    info = sf.info(str(manifest[0].path))
    assert (info.samplerate, info.channels) == (48_000, 2)
    wave = read_audio(manifest[0].path)
    assert wave.ndim == 1 and wave.dtype == np.float32
    assert abs(len(wave) - info.frames / 3) <= 1  # 48 kHz -> 16 kHz


def test_stereo_is_mixed_to_mono(tmp_path):
    left = np.sin(np.linspace(0, 200, 16_000)).astype(np.float32) * 0.5
    path = tmp_path / "03-01-01-01-01-01-01.wav"
    sf.write(str(path), np.stack([left, np.zeros_like(left)], axis=1), 16_000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), left / 2, atol=1e-6)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        ravdess.scan(tmp_path / "nowhere")
    (tmp_path / "empty" / "Actor_01").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no .wav or .flac"):
        ravdess.scan(tmp_path / "empty")


def test_bad_file_name_in_root_is_named(tmp_path):
    write_wav(tmp_path / "Actor_01" / "03-01-05-02-01-02-01.wav")
    write_wav(tmp_path / "Actor_01" / "my recording.wav")
    with pytest.raises(UserError, match="my recording.wav"):
        ravdess.scan(tmp_path)


def test_actor_folder_mismatch(tmp_path):
    write_wav(tmp_path / "Actor_03" / "03-01-05-02-01-02-01.wav")
    with pytest.raises(UserError, match="lies in folder Actor_03"):
        ravdess.scan(tmp_path)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_corrupt_and_truncated_files_are_named(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    sf.write(str(good), np.random.default_rng(0).normal(0, 0.1, 48_000), 48_000, subtype="PCM_16")
    data = good.read_bytes()
    truncated = tmp_path / f"03-01-01-01-01-01-01{suffix}"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / f"03-01-01-01-01-02-01{suffix}"
    corrupt.write_bytes(b"this is not audio" * 50)
    assert len(read_audio(good)) == 16_000
    with pytest.raises(UserError) as err:
        read_audio(truncated)
    assert truncated.name in str(err.value)
    with pytest.raises(UserError) as err:
        read_audio(corrupt)
    assert corrupt.name in str(err.value)


@pytest.mark.skipif(not REAL_RAVDESS.is_dir(), reason="real RAVDESS not present on this machine")
def test_real_ravdess_copy():
    manifest = ravdess.scan(REAL_RAVDESS)
    assert len(manifest) == 1440
    assert sorted({u.actor for u in manifest}) == list(range(1, 25))
    assert {u.emotion for u in manifest} == set(ravdess.EMOTIONS)
    # The five stereo files of the official release, kept in this copy on purpose.
    for stem in ("01/03-01-02-01-01-02-01", "01/03-01-08-01-02-02-01", "05/03-01-02-01-02-02-05",
                 "20/03-01-03-01-02-01-20", "20/03-01-06-01-01-02-20"):
        actor, name = stem.split("/")
        stereo = REAL_RAVDESS / f"Actor_{actor}" / f"{name}.flac"
        assert sf.info(str(stereo)).channels == 2
        wave = read_audio(stereo)
        assert wave.ndim == 1 and 2.5 * 16_000 < len(wave) < 6 * 16_000
