"""ONNX export of the log-mel models (cnn1d, cnn2d, resnet2d): waveform in, calibrated probabilities out.

The graph holds the whole path after decoding: the zero tail the log-mel cache saw, the STFT and mel filter
bank, the normalisation, the network and softmax(logits / T). Inputs `wave` [batch, samples] float32 at 16 kHz
(zero-padded) and `lengths` [batch] int64; output `probabilities` [batch, classes]. Batch and length are free
(at least MIN_SECONDS of samples). The class names, sample rate and temperature are in the model's metadata.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_bench.errors import UserError
from ser_bench.inference.scorer import Scorer
from ser_bench.models import base

log = logging.getLogger(__name__)

OPSET = 18
MIN_SECONDS = 0.5


class MaxPool1dAs2d(nn.Module):
    """nn.MaxPool1d computed as a 2D pooling over a unit axis: the same maxima, and unlike MaxPool1d it exports
    with a free length (torch.export specialises MaxPool1d's length to the example's)."""

    def __init__(self, pool: nn.MaxPool1d):
        super().__init__()
        self.kernel, self.stride = int(np.ravel(pool.kernel_size)[0]), int(np.ravel(pool.stride)[0])
        if pool.padding not in (0, (0,)) or pool.dilation not in (1, (1,)) or pool.ceil_mode:
            raise ValueError("only plain MaxPool1d (no padding, dilation or ceil_mode) is converted")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x.unsqueeze(-2), (1, self.kernel), (1, self.stride)).squeeze(-2)


def exportable(net: nn.Module) -> nn.Module:
    """A copy of `net` with every MaxPool1d replaced by MaxPool1dAs2d (the same outputs)."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool1d):
                setattr(module, child_name, MaxPool1dAs2d(child))
    return net


class Graph(nn.Module):
    def __init__(self, net: nn.Module, temperature: float, tail_samples: int):
        super().__init__()
        self.net, self.temperature, self.tail = net, float(temperature), int(tail_samples)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        wave = nn.functional.pad(wave, (0, self.tail))
        return (self.net(wave, lengths) / self.temperature).softmax(-1)


def _require():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise UserError(f"ONNX export needs the onnx extra ({err.name} is missing): pip install -e '.[onnx]'") from None


def export(scorer: Scorer, path: Path) -> Path:
    """Write `scorer`'s network as an ONNX model at `path`."""
    if base.is_encoder(scorer.net) or not base.is_log_mel(scorer.net):
        raise UserError("ONNX export covers the log-mel models (cnn1d, cnn2d, resnet2d); the pretrained encoders "
                        "are not exported yet, and the openSMILE baselines compute their features outside torch")
    _require()
    import onnx

    graph = Graph(exportable(scorer.net), scorer.temperature, scorer.tail_samples).eval()
    rate = scorer.sample_rate
    example = (torch.zeros(2, 3 * rate), torch.tensor([3 * rate, 2 * rate]))
    batch = torch.export.Dim("batch", min=1)
    samples = torch.export.Dim("samples", min=int(MIN_SECONDS * rate))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        # Shape facts the tracer cannot prove (a pooled length's parity) become checks at run time, not a length
        # fixed to the example's.
        program = torch.export.export(graph, example, dynamic_shapes={"wave": {0: batch, 1: samples},
                                                                      "lengths": {0: batch}},
                                      strict=False, prefer_deferred_runtime_asserts_over_guards=True)
        torch.onnx.export(program, f=str(path), input_names=["wave", "lengths"], output_names=["probabilities"],
                          opset_version=OPSET, dynamo=True, verbose=False)
    model = onnx.load(str(path))
    for key, value in {"class_names": json.dumps(scorer.class_names), "sample_rate": str(rate),
                       "temperature": str(scorer.temperature), "source": json.dumps(scorer.meta)}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def probabilities(sess, clips: list[np.ndarray]) -> np.ndarray:
    """onnxruntime's probabilities for clips, each scored alone."""
    out = [sess.run(None, {"wave": c[None].astype(np.float32), "lengths": np.array([len(c)], np.int64)})[0][0]
           for c in clips]
    return np.array(out, dtype=np.float64)


def parity(path: Path, scorer: Scorer, clips: list[np.ndarray]) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's (float32) probabilities on `clips`."""
    autocast, scorer.autocast = scorer.autocast, False
    try:
        expected = scorer.probabilities(clips)
    finally:
        scorer.autocast = autocast
    return float(np.abs(probabilities(session(path), clips) - expected).max())
