"""`python -m ser_bench.bench embed`: frozen wav2vec2 features through ser_bench vs a bare no-grad loop,
and the fine-tuning step time of the same base-size model.

The encoder is a base-size wav2vec2 (95M parameters) with random weights, saved with
`save_pretrained` into a temporary folder and loaded through `model.pretrained` as a user's local
checkpoint would be (no download). Both sides see the same clips, centre-cropped to
`--max-seconds` as evaluation crops them, one clip at a time (wav2vec2-base normalises over
time, so clips are not batched with padding).

- ser_bench: `models.features.cached_layer_features`, cold (cache emptied before each round):
  every hidden layer mean-pooled, written to the feature cache. Warm: the same call hitting it.
- bare: `with torch.no_grad(): encoder(clip, output_hidden_states=True)`, layers mean-pooled.

From the measured rate it prints what the cache saves a 6-fold frozen sweep of RAVDESS: without it
each run would push its training and validation clips through the encoder every epoch.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, corpus_paths, peak_rss_mib, summary, timed

HELP = "frozen wav2vec2 features: ser_bench vs a bare no-grad loop; fine-tune step time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--limit", type=int, default=32, help="clips per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="centre crop, as loader.max_seconds")
    parser.add_argument("--arch", default="wav2vec2", choices=["wav2vec2", "hubert", "wavlm"])
    parser.add_argument("--finetune-steps", type=int, default=5, help="timed fine-tune steps (0: skip)")
    parser.add_argument("--batch-size", type=int, default=8, help="fine-tune batch (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the sweep the savings are projected for")


def _bare(encoder, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    with torch.no_grad():
        for clip in clips:
            hidden = encoder(clip[None], output_hidden_states=True).hidden_states
            out.append(torch.stack([h.mean(dim=1)[0] for h in hidden]))
    return out


def run(args: argparse.Namespace) -> None:
    from ser_bench.data.audio import SAMPLE_RATE
    from ser_bench.data.cache import cache_key, load_waveforms
    from ser_bench.models.features import _centre, cached_layer_features
    from ser_bench.models.ssl import SSLClassifier, _architecture

    work = Path(tempfile.mkdtemp(prefix="ser_bench_embed_"))
    try:
        torch.manual_seed(0)
        config_cls, model_cls = _architecture(args.arch)
        model_cls(config_cls()).save_pretrained(work / "encoder")  # base size, random weights
        net = SSLClassifier(8, arch=args.arch, pretrained=str(work / "encoder"), mode="frozen")
        n_params = sum(p.numel() for p in net.encoder.parameters())
        paths = corpus_paths(args.root, args.limit)
        waves = load_waveforms(paths, work / "cache")
        max_samples = int(args.max_seconds * SAMPLE_RATE)
        clips = [torch.from_numpy(_centre(w, max_samples)) for w in waves]
        audio_s = sum(len(c) for c in clips) / SAMPLE_RATE
        key = cache_key(paths, SAMPLE_RATE)
        print(f"{args.arch} base, random weights, {n_params / 1e6:.1f}M parameters; {len(clips)} clips "
              f"({audio_s:.0f} s of audio, cropped to {args.max_seconds} s) from {args.root}; "
              f"torch threads {torch.get_num_threads()}")

        def ours() -> None:
            shutil.rmtree(work / "cache" / "features", ignore_errors=True)
            cached_layer_features(net, waves, key, max_samples, work / "cache")

        ours()  # warm-up: first calls allocate and pick kernels
        _bare(net.encoder, clips[:2])
        project, bare, warm = [], [], []
        for _ in range(args.rounds):
            project.append(timed(ours))
            warm.append(timed(lambda: cached_layer_features(net, waves, key, max_samples, work / "cache")))
            bare.append(timed(lambda: _bare(net.encoder, clips)))
        ours_features = np.stack(cached_layer_features(net, waves, key, max_samples, work / "cache"))
        bare_features = torch.stack(_bare(net.encoder, clips[:4])).flatten(1).numpy()
        np.testing.assert_allclose(ours_features[:4], bare_features, rtol=1e-4, atol=1e-4)  # same work
        print(summary("ser_bench, cold cache", project))
        print(summary("bare no-grad loop", bare))
        print(summary("ser_bench, warm cache", warm))
        rate_ours, rate_bare = len(clips) / statistics.median(project), len(clips) / statistics.median(bare)
        print(f"clips/s: ser_bench {rate_ours:.2f}, bare {rate_bare:.2f}; ratio ser_bench / bare "
              f"{rate_ours / rate_bare:.3f}")
        corpus, n_test = 1440, 240  # RAVDESS; an emobox fold tests 4 actors (train + validation: the other 20)
        once = corpus / rate_ours
        per_run = (args.epochs * (corpus - n_test) + n_test) / rate_bare
        print(f"projected for RAVDESS (1440 clips), 6 emobox folds, {args.epochs} epochs: encoder once through "
              f"the cache {once / 60:.1f} min; without it each run encodes train + validation every epoch and "
              f"test once: {per_run / 60:.0f} min per run, {6 * per_run / 3600:.1f} h per sweep "
              f"({6 * per_run / once:.0f}x)")
        print(f"peak RSS so far {peak_rss_mib():.0f} MiB")
        if args.finetune_steps:
            finetune_steps(args, work, clips)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def finetune_steps(args: argparse.Namespace, work: Path, clips: list[torch.Tensor]) -> None:
    """Forward + backward + AdamW step on a padded batch, `model.mode=finetune` (feature encoder frozen)."""
    from ser_bench.data.padding import pad
    from ser_bench.models.ssl import SSLClassifier

    net = SSLClassifier(8, arch=args.arch, pretrained=str(work / "encoder"), mode="finetune")
    batch_clips = (clips * args.batch_size)[: args.batch_size]
    batch, lengths = pad(batch_clips)
    labels = torch.arange(len(batch_clips)) % 8
    optimizer = torch.optim.AdamW(net.param_groups(1e-3))
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(batch, lengths), labels).backward()
        optimizer.step()

    step()  # warm-up
    times = [timed(step) for _ in range(args.finetune_steps)]
    print(f"fine-tune (mode=finetune, {trainable / 1e6:.1f}M trainable), batch {len(batch_clips)} x "
          f"{float(lengths.float().mean()) / 16_000:.1f} s mean:")
    print(summary("  one training step", times))
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
