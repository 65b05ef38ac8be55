"""Every finished run's MLflow model (`runs:/ID/model`): the ser_bench model folder as a pyfunc model.

Logged "from code" (`pyfunc_model.py`), so loading it unpickles nothing; `mlflow.pyfunc.load_model` works in
any process with ser_bench installed, without Hydra's config or the training code's Lightning.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema
from torch import nn

from ser_bench import calibration
from ser_bench.inference import bundle
from ser_bench.inference.sources import ARTIFACT

log = logging.getLogger(__name__)

ENTRY = Path(__file__).with_name("pyfunc_model.py")
RUNTIME = ("torch", "torchaudio", "numpy", "soundfile", "soxr", "safetensors", "hydra-core", "pandas", "mlflow")


def signature(class_names: list[str]) -> ModelSignature:
    inputs = Schema([ColSpec(Array(DataType.double), "wave"), ColSpec(DataType.long, "sample_rate", required=False)])
    outputs = Schema([ColSpec(DataType.string, "emotion"), ColSpec(DataType.double, "confidence"),
                      *(ColSpec(DataType.double, f"p_{c}") for c in class_names)])
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("abstain", DataType.double, 0.0)]))


def requirements() -> list[str]:
    """The installed versions of what the model needs beside ser_bench itself (which must be installed:
    serve with `--env-manager local`). Listed, so MLflow does not import the model to infer them."""
    out = []
    for name in RUNTIME:
        try:
            out.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


SOURCE_TAGS = ("model", "augment", "corpus", "labels", "split", "fold", "folds.total", "seed", "leaky", "actors.test",
               "config_hash", "git_commit")
SOURCE_METRICS = ("test/ua", "test/wa", "test/macro_f1", "best/val_ua")


def source(run) -> dict:
    """Where a model came from, for its folder and the LoggedModel's params: the run, its protocol, test figures."""
    tags, metrics = run.data.tags, run.data.metrics
    out = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}
    out.update({k.replace(".", "_"): tags[k] for k in SOURCE_TAGS if k in tags})
    out.update({k.replace("/", "_"): round(metrics[k], 6) for k in SOURCE_METRICS if k in metrics})
    return out


def log_run_model(net: nn.Module, net_spec: dict, class_names: list[str], *, window_seconds: float | None,
                  precision: str, val_rows: list[dict], test_rows: list[dict], omit: set[str],
                  source: dict) -> dict[str, float]:
    """Fit the temperature on the validation rows, log the calibration metrics and the model into the active
    run; returns the metrics. `net` is the evaluated network (the moving average where there is one)."""
    val = calibration.from_rows(val_rows, class_names)
    test = calibration.from_rows(test_rows, class_names) if test_rows else None
    figures = calibration.summary(val, test)
    if not val_rows:
        log.warning("no validation predictions: the model's temperature stays 1.0 (uncalibrated)")
    mlflow.log_metrics({k: v for k, v in figures.items() if v == v})  # NaN (no clips) is left out
    with tempfile.TemporaryDirectory(prefix="ser-model-") as tmp:
        folder = bundle.save(Path(tmp) / "bundle", net, net_spec, class_names,
                             temperature=figures["calibration/temperature"], window_seconds=window_seconds,
                             precision=precision, omit=omit, source=source, calibrated=bool(val_rows))
        log_folder(folder, class_names, source)
    return figures


def log_folder(folder: Path, class_names: list[str], params: dict | None = None):
    """Log a ser_bench model folder as the active run's MLflow model `model`; returns MLflow's ModelInfo."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with warnings.catch_warnings():
        # The signature is given, and the input (a waveform) has no small example worth storing.
        warnings.filterwarnings("ignore", message=".*input example.*")
        return mlflow.pyfunc.log_model(name=ARTIFACT, python_model=str(ENTRY), artifacts={"bundle": str(folder)},
                                       signature=signature(class_names), pip_requirements=requirements(),
                                       params={k: str(v) for k, v in (params or {}).items() if v is not None})
