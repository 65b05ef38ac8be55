"""`python -m ser_bench.bench step`: one training step of each 2D model with its convolution weights in the
default (NCHW) and the channels-last memory format, which `SERModule` uses.

Each model is built twice from its conf/model yaml with the same initial weights; the two copies
take alternating steps (forward, cross-entropy, backward, AdamW) on the same synthetic batch: white
noise, batch size and crop as the loader makes them (`--batch`, `--seconds`). The first step of each
copy is a warm-up and not counted. It also checks that both copies give the same evaluation outputs
before training (within 1e-4; it stops otherwise), so the faster path computes the same function.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from functools import partial

import torch

from ser_bench.bench.common import compose_train, summary, timed

HELP = "one training step of cnn2d / resnet2d: NCHW vs channels-last weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="cnn2d,resnet2d", help="models from conf/model (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per side (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="clips per batch (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length, as loader.max_seconds")


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, wave: torch.Tensor, lengths: torch.Tensor,
          labels: torch.Tensor) -> None:
    loss = torch.nn.functional.cross_entropy(net(wave, lengths), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def run(args: argparse.Namespace) -> None:
    from hydra.utils import instantiate

    from ser_bench.data.audio import SAMPLE_RATE

    generator = torch.Generator().manual_seed(0)
    samples = int(args.seconds * SAMPLE_RATE)
    wave = torch.randn(args.batch, samples, generator=generator) * 0.1
    lengths = torch.full((args.batch,), samples)
    labels = torch.randint(0, 8, (args.batch,), generator=generator)
    for model in args.models.split(","):
        cfg = compose_train([f"model={model}"])
        torch.manual_seed(0)
        nchw = instantiate(cfg.model.net, num_classes=8)
        sides = {"NCHW": nchw, "channels-last": copy.deepcopy(nchw).to(memory_format=torch.channels_last)}
        with torch.no_grad():
            outputs = [net.eval()(wave[:4], lengths[:4]) for net in sides.values()]
        difference = float((outputs[0] - outputs[1]).abs().max())
        if difference > 1e-4:
            raise RuntimeError(f"{model}: NCHW and channels-last outputs differ by {difference:.1e}")
        optimizers = {name: torch.optim.AdamW(net.train().parameters()) for name, net in sides.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        steps = {name: partial(_step, net, optimizers[name], wave, lengths, labels) for name, net in sides.items()}
        for step in steps.values():
            step()  # warm-up
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].append(timed(step))
        print(f"{model}, one training step, batch {args.batch} x {args.seconds:g} s, "
              f"torch threads {torch.get_num_threads()} (eval outputs differ by {difference:.1e} at most):")
        for name, seconds in times.items():
            print(summary(f"  {name}", seconds))
        ratio = statistics.median(times["NCHW"]) / statistics.median(times["channels-last"])
        print(f"  NCHW / channels-last {ratio:.2f}x", flush=True)
