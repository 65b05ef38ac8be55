"""`python -m ser_bench.bench augment`: offline `augment=all` (1 copy of every clip), cold and warm,
and ser_bench's pitch shift against torchaudio's `functional.pitch_shift` on the same clips.

Cold: the copies are made and written to an empty augmentation cache. Warm: the same call finds
them and memory-maps them. Decoding the corpus is done (and cached) once before either, and timed
on its own.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, compose_train, corpus_paths, peak_rss_mib, summary, timed

HELP = "offline augment=all cold vs warm; pitch shift vs torchaudio"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--rounds", type=int, default=3, help="cold/warm rounds (default: %(default)s)")
    parser.add_argument("--augment", default="all", help="augment option from conf/augment (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips")
    parser.add_argument("--pitch-clips", type=int, default=5,
                        help="clips for the pitch_shift comparison (torchaudio's takes seconds each)")


def run(args: argparse.Namespace) -> None:
    from hydra.utils import instantiate

    from ser_bench.augment.offline import offline_copies
    from ser_bench.augment.pitch import Pitch
    from ser_bench.data.audio import SAMPLE_RATE
    from ser_bench.data.cache import cache_key, load_waveforms

    augmentation = instantiate(compose_train([f"augment={args.augment}"]).augment)
    paths = corpus_paths(args.root, args.limit)
    work = Path(tempfile.mkdtemp(prefix="ser_bench_bench_"))
    try:
        decode = timed(lambda: load_waveforms(paths, work))
        waves = load_waveforms(paths, work)
        key = cache_key(paths, SAMPLE_RATE)
        seconds = sum(len(w) for w in waves) / SAMPLE_RATE
        print(f"{len(paths)} clips ({seconds / 60:.1f} min of audio) from {args.root}; "
              f"decode + resample once: {decode:.1f} s; torch threads {torch.get_num_threads()}")
        print(augmentation)
        cold, warm = [], []
        for _ in range(args.rounds):
            shutil.rmtree(work / "augment", ignore_errors=True)
            cold.append(timed(lambda: offline_copies(waves, key, augmentation, work)))
            warm.append(timed(lambda: offline_copies(waves, key, augmentation, work)))
        print(summary(f"offline {args.augment}, cold", cold))
        print(summary(f"offline {args.augment}, warm", warm))
        print(f"warm / cold: {statistics.median(warm) / statistics.median(cold):.4f}")
        print(f"peak RSS so far {peak_rss_mib():.0f} MiB")

        clips = [torch.from_numpy(waves[i].copy()) for i in range(min(args.pitch_clips, len(waves)))]
        if not clips:
            return
        ours, theirs = [], []
        for i, clip in enumerate(clips):  # the same shift on both sides, alternating
            steps = (-1) ** i * float(torch.empty(()).uniform_(1, 3, generator=torch.Generator().manual_seed(i)))
            pitch = Pitch(semitones=(steps, steps))
            ours.append(timed(lambda c=clip, p=pitch: p(c, torch.Generator())))
            theirs.append(timed(lambda c=clip, s=steps: _torchaudio_pitch(c, s)))
        print(summary("pitch, ser_bench (per clip)", ours))
        print(summary("pitch, torchaudio (per clip)", theirs))
        print(f"torchaudio / ser_bench: {statistics.median(theirs) / statistics.median(ours):.0f}x")
        print(f"peak RSS after torchaudio's pitch_shift {peak_rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _torchaudio_pitch(clip: torch.Tensor, steps: float) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.pitch_shift(clip, 16_000, steps)
