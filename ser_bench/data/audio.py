"""Decode any audio file soundfile reads into mono float32 at the target sample rate.

Resampling is libsoxr's high-quality mode (the `soxr` package, as librosa uses by default): about
2.8x faster than `torchaudio.functional.resample` from 48 to 16 kHz on one core, and closer to the
original on a 16 -> 48 -> 16 kHz round trip (43.1 vs 41.0 dB SNR, one RAVDESS clip).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_bench.errors import UserError

SAMPLE_RATE = 16_000


def _riff_truncated(path: Path) -> bool:
    """True when a RIFF/WAVE header declares more bytes than the file holds.

    libsndfile quietly shortens such files to what is there, so a cut-off download would pass
    unnoticed; the header's own size field tells. Streaming writers that leave the field at 0 or
    0xFFFFFFFF are taken at their word (not truncated).
    """
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    declared = int.from_bytes(head[4:8], "little")
    if declared in (0, 0xFFFFFFFF):
        return False
    return path.stat().st_size < declared + 8


def resample(wave: np.ndarray, orig: int, new: int) -> np.ndarray:
    """`wave` from `orig` to `new` Hz with libsoxr's high-quality mode."""
    return soxr.resample(np.ascontiguousarray(wave), orig, new, quality="HQ")


def read_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate`; a corrupt or truncated file is a UserError."""
    if _riff_truncated(path):
        raise UserError(f"audio file {path} is truncated (shorter than its WAV header says); replace it")
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise UserError(f"cannot decode audio file {path}: {err}; replace or remove the file") from None
    if info.frames > 0 and data.shape[0] < info.frames:
        raise UserError(
            f"audio file {path} is truncated: header promises {info.frames} frames, "
            f"only {data.shape[0]} could be read; replace or remove the file"
        )
    if data.shape[0] == 0:
        raise UserError(f"audio file {path} holds no samples; replace or remove the file")
    if not np.isfinite(data).all():  # float WAVs can hold NaN or inf: they would train and score silently
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise UserError(f"audio file {path} holds {bad} non-finite samples (NaN or inf); replace or remove the file")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        mono = resample(mono, sr, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)
