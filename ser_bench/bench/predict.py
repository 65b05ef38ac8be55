"""`python -m ser_bench.bench predict`: `python -m ser_bench.predict` against a bare forward loop, its cold start,
and onnxruntime against PyTorch.

The model is a model folder written with `inference.bundle.save` from a freshly built network of `--net`
(random weights: speed does not depend on them), or `--model SPEC` for a trained one. The clips are the first
`--limit` files of `--root`.

- predict: `ser_bench.predict.main` in this process over the files (decode, resample, score in batches,
  write a CSV), the same work as the command minus Python's start.
- bare: for each file `read_audio`, then `net(wave[None], lengths)` under `torch.inference_mode()`.
- cold start: the real command in a fresh process on one clip of about 3 s, with a local model folder and with
  a run id in a SQLite store (MLflow's client is imported then).
- ONNX: the exported graph in onnxruntime (CPU) vs the PyTorch network, the same decoded clips one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, corpus_paths, peak_rss_mib, summary, timed

HELP = "predict vs a bare forward loop, cold start of one clip, onnxruntime vs PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP)
    parser.add_argument("--limit", type=int, default=240, help="clips (default: %(default)s, one emobox test fold)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default: %(default)s)")
    parser.add_argument("--net", default="cnn1d", choices=["cnn1d", "cnn2d", "resnet2d"],
                        help="network to build when --model is not given (default: %(default)s)")
    parser.add_argument("--model", help="a trained model instead (run id, models:/..., or a model folder)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--cold-rounds", type=int, default=5, help="fresh processes per cold start (default: 5)")


def fresh_model(name: str, folder: Path) -> Path:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ser_bench.bench.common import compose_train
    from ser_bench.data.manifest import EMOTIONS
    from ser_bench.inference import bundle

    torch.manual_seed(0)
    spec = compose_train([f"model={name}"]).model.net
    net = instantiate(spec, num_classes=len(EMOTIONS)).eval()
    return bundle.save(folder, net, OmegaConf.to_container(spec, resolve=True), list(EMOTIONS), temperature=1.5,
                       window_seconds=6.0, source={"model": name})


def logged(folder: Path, work: Path) -> tuple[str, str]:
    """The model folder logged as a run's MLflow model in a new SQLite store: (run id, tracking URI)."""
    import mlflow

    from ser_bench.inference import bundle, mlflow_model

    uri = f"sqlite:///{work}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    meta = bundle.read_meta(folder)
    with mlflow.start_run() as run:
        mlflow_model.log_folder(folder, meta["class_names"])
    return run.info.run_id, uri


def bare(net, paths: list[Path], tail: int) -> None:
    from ser_bench.data.audio import read_audio

    with torch.inference_mode():
        for p in paths:
            wave = torch.from_numpy(np.concatenate([read_audio(p), np.zeros(tail, np.float32)]))[None]
            net(wave, torch.tensor([wave.shape[1] - tail]))


def cold(args: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        out.append(timed(lambda: subprocess.run([sys.executable, "-m", "ser_bench.predict", *args], check=True,
                                                capture_output=True)))
    return out


def run(args: argparse.Namespace) -> None:
    from ser_bench import predict
    from ser_bench.data.audio import read_audio
    from ser_bench.inference import bundle, onnx_export, sources

    with tempfile.TemporaryDirectory(prefix="ser_bench_predict_") as tmp:
        work = Path(tmp)
        folder = sources.resolve(args.model, args.tracking_uri) if args.model else fresh_model(args.net, work / "m")
        scorer = bundle.load(folder)
        paths = corpus_paths(args.root, args.limit)
        seconds = sum(len(read_audio(p)) for p in paths) / scorer.sample_rate
        params = sum(p.numel() for p in scorer.net.parameters()) / 1e6
        print(f"{scorer.name}: {params:.2f}M parameters; {len(paths)} clips ({seconds:.0f} s of audio) from "
              f"{args.root}; torch threads {torch.get_num_threads()}")

        def ours() -> None:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                code = predict.main(["--model", str(folder), "--out", str(work / "p.csv"), *map(str, paths)])
            assert code == 0

        ours()  # warm-up
        bare(scorer.net, paths[:4], scorer.tail_samples)
        sides = {"predict (in process)": [], "bare forward loop": []}
        for _ in range(args.rounds):
            sides["predict (in process)"].append(timed(ours))
            sides["bare forward loop"].append(timed(lambda: bare(scorer.net, paths, scorer.tail_samples)))
        for name, times in sides.items():
            print(summary(name, times))
        rates = {k: len(paths) / statistics.median(v) for k, v in sides.items()}
        print(f"clips/s: predict {rates['predict (in process)']:.1f}, bare {rates['bare forward loop']:.1f}; "
              f"ratio predict / bare {rates['predict (in process)'] / rates['bare forward loop']:.3f}")

        clip = min(paths, key=lambda p: abs(len(read_audio(p)) / scorer.sample_rate - 3.0))
        clip_s = len(read_audio(clip)) / scorer.sample_rate
        local = cold(["--model", str(folder), str(clip)], args.cold_rounds)
        print(summary(f"cold predict, model folder, {clip_s:.1f} s clip", local))
        run_id, uri = logged(folder, work)
        by_id = cold(["--model", run_id, "--tracking-uri", uri, str(clip)], args.cold_rounds)
        print(summary(f"cold predict, run id (SQLite), {clip_s:.1f} s clip", by_id))
        print(f"(a run id or models:/ URI adds MLflow's import and its store to the cold start: "
              f"{statistics.median(by_id) - statistics.median(local):+.2f} s)")

        if onnx_export.base.is_log_mel(scorer.net) and not onnx_export.base.is_encoder(scorer.net):
            onnx_side(scorer, [read_audio(p) for p in paths], work, args.rounds)
        print(f"peak RSS {peak_rss_mib():.0f} MiB")


def onnx_side(scorer, clips: list[np.ndarray], work: Path, rounds: int) -> None:
    from ser_bench.inference import onnx_export

    path = onnx_export.export(scorer, work / "m.onnx")
    sess = onnx_export.session(path)
    diff = onnx_export.parity(path, scorer, clips[:16])
    onnx_export.probabilities(sess, clips[:4])  # warm-up
    sides = {"onnxruntime, one clip at a time": [], "PyTorch, one clip at a time": []}
    for _ in range(rounds):
        sides["onnxruntime, one clip at a time"].append(timed(lambda: onnx_export.probabilities(sess, clips)))
        sides["PyTorch, one clip at a time"].append(timed(lambda: [scorer.probabilities([c]) for c in clips]))
    for name, times in sides.items():
        print(summary(name, times))
    ort_rate, pt_rate = (len(clips) / statistics.median(v) for v in sides.values())
    print(f"clips/s: onnxruntime {ort_rate:.1f}, PyTorch {pt_rate:.1f}; ratio {ort_rate / pt_rate:.2f}; "
          f"max |probability difference| on 16 clips {diff:.1e}")
