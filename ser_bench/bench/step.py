"""`python -m ser_bench.bench step`: one training step of each 2D model with its convolution weights in the
default (NCHW) and the channels-last memory format, which `SERModule` uses, and channels-last under
bfloat16 autocast, which `trainer.precision=bf16-mixed` turns on.

Each model is built three times from its conf/model yaml with the same initial weights; the copies
take alternating steps (forward, cross-entropy, backward, AdamW) on the same synthetic batch: white
noise, batch size and crop as the loader makes them (`--batch`, `--seconds`). The first step of each
copy is a warm-up and not counted. It checks that NCHW and channels-last give the same evaluation
outputs before training (within 1e-4; it stops otherwise), so the faster path computes the same
function; bf16 computes a different one (8-bit mantissas in the convolutions and matmuls), so its
largest output difference is printed, and whether that costs accuracy is a question for whole runs.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from functools import partial

import torch

from ser_bench.bench.common import compose_train, summary, timed

HELP = "one training step of cnn2d / resnet2d: NCHW vs channels-last weights vs channels-last + bf16 autocast"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="cnn2d,resnet2d", help="models from conf/model (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per side (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="clips per batch (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length, as loader.max_seconds")


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, wave: torch.Tensor, lengths: torch.Tensor,
          labels: torch.Tensor, bf16: bool = False) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = net(wave, lengths)
    loss = torch.nn.functional.cross_entropy(logits.float(), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def run(args: argparse.Namespace) -> None:
    from hydra.utils import instantiate

    from ser_bench.data.audio import SAMPLE_RATE
    from ser_bench.train import cpu_has_bf16

    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, bfloat16 units (AVX-512 BF16 or AMX): "
          f"{'yes' if cpu_has_bf16() else 'no, bf16 is emulated'}", flush=True)
    generator = torch.Generator().manual_seed(0)
    samples = int(args.seconds * SAMPLE_RATE)
    wave = torch.randn(args.batch, samples, generator=generator) * 0.1
    lengths = torch.full((args.batch,), samples)
    labels = torch.randint(0, 8, (args.batch,), generator=generator)
    for model in args.models.split(","):
        cfg = compose_train([f"model={model}"])
        torch.manual_seed(0)
        nchw = instantiate(cfg.model.net, num_classes=8)
        sides = {"NCHW": nchw, "channels-last": copy.deepcopy(nchw).to(memory_format=torch.channels_last),
                 "channels-last + bf16": copy.deepcopy(nchw).to(memory_format=torch.channels_last)}
        bf16 = {name: name.endswith("bf16") for name in sides}
        with torch.no_grad():
            outputs = {}
            for name, net in sides.items():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16[name]):
                    outputs[name] = net.eval()(wave[:4], lengths[:4]).float()
        difference = float((outputs["NCHW"] - outputs["channels-last"]).abs().max())
        if difference > 1e-4:
            raise RuntimeError(f"{model}: NCHW and channels-last outputs differ by {difference:.1e}")
        bf16_difference = float((outputs["NCHW"] - outputs["channels-last + bf16"]).abs().max())
        optimizers = {name: torch.optim.AdamW(net.train().parameters()) for name, net in sides.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        steps = {name: partial(_step, net, optimizers[name], wave, lengths, labels, bf16[name])
                 for name, net in sides.items()}
        for step in steps.values():
            step()  # warm-up
        for _ in range(args.rounds):
            for name, step in steps.items():
                times[name].append(timed(step))
        print(f"{model}, one training step, batch {args.batch} x {args.seconds:g} s, "
              f"torch threads {torch.get_num_threads()} (eval logits differ from NCHW by {difference:.1e} "
              f"channels-last, {bf16_difference:.1e} bf16):")
        for name, seconds in times.items():
            print(summary(f"  {name}", seconds))
        base = statistics.median(times["NCHW"])
        ratios = ", ".join(f"{name} {base / statistics.median(times[name]):.2f}x" for name in list(sides)[1:])
        print(f"  NCHW time / {ratios}", flush=True)
