"""`python -m ser_bench.bench features`: decode + resample to 16 kHz + log-mel for every clip.

Other side: the original study's way, `librosa.load(path, sr=16000)` then
`librosa.feature.melspectrogram` (same FFT size, window, hop and mel bands) and `power_to_db`, per
file. Needs the `bench` extra (librosa).

Input: the official release's format, 48 kHz 16-bit WAV. The shared corpus is a 16 kHz FLAC copy,
so the benchmark first writes 48 kHz WAV copies of `--limit` clips (untimed; `--wav48 DIR` reuses
them). ser_bench cold: both caches empty (decode and resample on a thread pool, write the decoded
audio; log-mel in length-sorted batches, write it), which is a corpus's first run. Warm: both caches
hit, every value read, which is every later run. Rounds alternate sides. Then each stage alone:
decode, resample, log-mel and the STFT inside it, to show what is left to gain.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, corpus_paths, peak_rss_mib, summary, timed

HELP = "decode + resample + log-mel: ser_bench (cold, warm) vs librosa"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default: %(default)s)")
    parser.add_argument("--wav48", type=Path, default=None,
                        help="folder for the 48 kHz WAV copies (kept; default: a temporary folder)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per log-mel call (default: %(default)s)")


def write_48k(paths: list[Path], folder: Path) -> list[Path]:
    """48 kHz PCM-16 WAV copies, as the official release ships them (made once, untimed)."""
    import soundfile as sf
    import torchaudio.functional as AF

    from ser_bench.data.audio import read_audio

    out = []
    for path in paths:
        target = folder / path.parent.name / f"{path.stem}.wav"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            wave = AF.resample(torch.from_numpy(read_audio(path)), 16_000, 48_000).numpy()
            sf.write(str(target), np.clip(wave, -1, 1), 48_000, subtype="PCM_16")
        out.append(target)
    return out


def features_all(paths: list[Path], cache: Path, batch_size: int) -> float:
    """What a run does before training: decoded audio, then every clip's log-mel, both through the
    caches (made on a miss, memory-mapped on a hit). Every value is read (summed), as training would."""
    from ser_bench.data.audio import SAMPLE_RATE
    from ser_bench.data.cache import cache_key, load_waveforms
    from ser_bench.models.features import cached_log_mel
    from ser_bench.models.frontends import LogMel

    key = cache_key(paths, SAMPLE_RATE)
    feats = cached_log_mel(LogMel(), load_waveforms(paths, cache, key=key), key, cache, batch_size)
    return float(sum(np.sum(f, dtype=np.float64) for f in feats))


def without_integrity_check(paths: list[Path], cache: Path, batch_size: int) -> float:
    """`features_all` with the cache entries' integrity check skipped (as before entries checked themselves)."""
    from ser_bench.data import integrity

    verify = integrity.verify
    integrity.verify = lambda entry, info: False
    try:
        return features_all(paths, cache, batch_size)
    finally:
        integrity.verify = verify


def stages(paths: list[Path], cache: Path, batch_size: int) -> dict[str, float]:
    """Seconds per stage, single-threaded Python loops over the same clips (torch keeps its threads):
    file decode, 48 -> 16 kHz resampling (as `read_audio` does it), log-mel on length-sorted batches,
    and the STFT alone."""
    import soundfile as sf

    from ser_bench.data.audio import resample
    from ser_bench.data.cache import load_waveforms
    from ser_bench.data.padding import pad
    from ser_bench.models.frontends import LogMel

    out = {}
    start = time.perf_counter()
    raw = [sf.read(str(p), dtype="float32")[0] for p in paths]
    out["decode (soundfile)"] = time.perf_counter() - start
    start = time.perf_counter()
    for wave in raw:
        resample(wave, 48_000, 16_000)
    out["resample 48 -> 16 kHz (soxr)"] = time.perf_counter() - start
    waves = load_waveforms(paths, cache)
    order = np.argsort([len(w) for w in waves])
    batches = [pad([waves[i] for i in order[k:k + batch_size]]) for k in range(0, len(waves), batch_size)]
    frontend = LogMel()
    mel = frontend.mel
    window = torch.hann_window(mel.win_length)
    with torch.inference_mode():
        start = time.perf_counter()
        for wave, lengths in batches:
            frontend.raw(wave, lengths)
        out["log-mel (STFT, power, mel, log)"] = time.perf_counter() - start
        start = time.perf_counter()
        for wave, _ in batches:
            torch.stft(wave, mel.n_fft, mel.hop_length, mel.win_length, window, return_complex=True)
        out["  of which the STFT alone"] = time.perf_counter() - start
    return out


def librosa_all(paths: list[Path], n_fft: int, win_length: int, hop: int, n_mels: int, f_min: float) -> list:
    import librosa

    out = []
    for path in paths:
        y, sr = librosa.load(str(path), sr=16_000)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, win_length=win_length, hop_length=hop,
                                             n_mels=n_mels, fmin=f_min)
        out.append(librosa.power_to_db(mel))
    return out


def run(args: argparse.Namespace) -> None:
    try:
        import librosa  # noqa: F401 - checked before any timing
    except ImportError:
        raise SystemExit("bench features needs librosa: pip install -e '.[bench]'") from None
    from ser_bench.models.frontends import LogMel

    work = Path(tempfile.mkdtemp(prefix="ser_bench_features_"))
    try:
        paths = write_48k(corpus_paths(args.root, args.limit), args.wav48 or work / "wav48")
        frontend = LogMel()
        mel = frontend.mel
        settings = dict(n_fft=mel.n_fft, win_length=mel.win_length, hop=mel.hop_length, n_mels=frontend.n_mels,
                        f_min=mel.f_min)
        print(f"{len(paths)} clips, 48 kHz 16-bit WAV; log-mel {settings}; torch threads {torch.get_num_threads()}")
        cache = work / "cache"

        def cold() -> None:
            shutil.rmtree(cache, ignore_errors=True)
            features_all(paths, cache, args.batch_size)

        librosa_all(paths[:2], **settings)  # warm-up: librosa's first call compiles (numba)
        cold()
        ours_cold, ours_warm, unchecked, theirs = [], [], [], []
        for _ in range(args.rounds):
            ours_cold.append(timed(cold))
            features_all(paths, cache, args.batch_size)  # the first read after writing the entries: untimed
            for side in (ours_warm, unchecked)[:: 1 if len(ours_warm) % 2 else -1]:  # alternate which goes first
                side.append(timed(lambda side=side: (without_integrity_check if side is unchecked else features_all)(
                    paths, cache, args.batch_size)))
            theirs.append(timed(lambda: librosa_all(paths, **settings)))
        parts = [stages(paths, cache, args.batch_size) for _ in range(args.rounds)]
        print(summary("librosa load + melspectrogram", theirs))
        print(summary("ser_bench, cold caches", ours_cold))
        print(summary("ser_bench, warm caches", ours_warm))
        print(summary("  the same without the entries' check", unchecked))
        check = statistics.median(ours_warm) - statistics.median(unchecked)
        print(f"the cache entries' integrity check costs {1e3 * check:+.1f} ms per warm pass "
              f"({100 * check / statistics.median(unchecked):+.0f}% of it)")
        lib = statistics.median(theirs)
        print(f"librosa / ser_bench: cold {lib / statistics.median(ours_cold):.1f}x, "
              f"warm {lib / statistics.median(ours_warm):.0f}x")
        print("stages, one thread of Python each (median seconds over the rounds):")
        for name in parts[0]:
            print(f"  {name:<34} {statistics.median(p[name] for p in parts):7.3f} s")
        print(f"peak RSS {peak_rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
