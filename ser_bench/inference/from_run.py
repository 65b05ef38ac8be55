"""A finished run's tested network, rebuilt from what the run logged: `config.yaml`, `checkpoints/best.ckpt`, and
the class names of `confusion_matrix.csv` (for runs that predate the per-run MLflow model, or to re-make one).

The checkpoint is read with `torch.load(weights_only=True)`: tensors only, nothing unpickled.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from ser_bench.errors import UserError
from ser_bench.inference import bundle
from ser_bench.models.base import AVERAGED_PREFIX


@dataclass
class Tested:
    net: nn.Module
    net_spec: dict
    class_names: list[str]
    window_seconds: float | None
    precision: str
    val_rows: list[dict]
    test_rows: list[dict]
    omit: set[str]


def _rows(path: str | None) -> list[dict]:
    if path is None:
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rebuild(run_id: str, fetch) -> Tested:
    """`fetch(run_id, name)` gives a local copy of one of the run's artifacts, or None."""
    config, checkpoint = fetch(run_id, "config.yaml"), fetch(run_id, "checkpoints/best.ckpt")
    matrix = fetch(run_id, "confusion_matrix.csv")
    if config is None or matrix is None:
        raise UserError(f"run {run_id} has no config.yaml or confusion_matrix.csv: not a finished ser_bench run")
    if checkpoint is None:
        raise UserError(f"run {run_id} logged no checkpoint (tracking.log_checkpoint=false): train it again with "
                        f"tracking.log_model=true (the default) to get its model")
    cfg = OmegaConf.load(config)
    with open(matrix, newline="") as f:
        class_names = next(csv.reader(f))[1:]
    spec = OmegaConf.to_container(cfg.model.net, resolve=True)
    net = bundle.build_net({**spec, "num_classes": len(class_names)})
    omit = bundle.referenced_parameters(net)
    load_tested(net, Path(checkpoint), omit)
    return Tested(net.eval(), spec, class_names, cfg.loader.get("max_seconds"),
                  str(cfg.trainer.get("precision", "32-true")), _rows(fetch(run_id, "val_predictions.csv")),
                  _rows(fetch(run_id, "predictions.csv")), omit)


def load_tested(net: nn.Module, checkpoint: Path, omit: set[str]) -> None:
    """The tested weights into `net`: the moving average where the run kept one, else the network's own. Every
    tensor must be there, but for the frozen pretrained ones (`omit`) that the checkpoint leaves out."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise UserError(f"cannot read {checkpoint} as a checkpoint ({err})") from None
    state = state.get("state_dict", state)
    prefix = AVERAGED_PREFIX if any(k.startswith(AVERAGED_PREFIX) for k in state) else "net."
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - omit:
        raise UserError(f"{checkpoint} does not fit the run's network ({len(unexpected)} unexpected, "
                        f"{len(set(missing) - omit)} missing tensors)")
