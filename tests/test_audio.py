"""Resampling on decode: the tone survives, what lies above the new Nyquist frequency does not."""

import numpy as np
import soundfile as sf

from ser_bench.data.audio import read_audio


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_48k_tone_keeps_its_frequency_and_level(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(str(path), _tone(1000, 48_000), 48_000, subtype="FLOAT")
    wave = read_audio(path)
    assert len(wave) == 16_000
    inner = slice(800, -800)  # away from the edges, where the filter has no past or future
    np.testing.assert_allclose(wave[inner], _tone(1000, 16_000)[inner], atol=2e-3)


def test_48k_tone_above_8k_is_filtered_out(tmp_path):
    path = tmp_path / "high.wav"
    sf.write(str(path), _tone(12_000, 48_000), 48_000, subtype="FLOAT")
    wave = read_audio(path)
    assert np.sqrt(np.mean(wave[800:-800] ** 2)) < 1e-3  # a 0.35 RMS tone that would alias to 4 kHz
