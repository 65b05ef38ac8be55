"""`model.init_from`: start a model from weights trained elsewhere (transfer between corpora).

The source is a checkpoint file (Lightning's `.ckpt` or a plain state dict) or an MLflow run id,
whose logged `checkpoints/best.ckpt` is used. Every tensor whose name and shape match is copied;
the rest (a head for another label set, say) keeps its fresh initialisation and is listed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

from ser_bench.errors import UserError
from ser_bench.models.base import AVERAGED_PREFIX

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def resolve(source: str, tracking_uri: str) -> Path:
    """A local checkpoint path for a path or an MLflow run id."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if RUN_ID.match(source):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            return Path(MlflowClient(tracking_uri).download_artifacts(source, "checkpoints/best.ckpt"))
        except (MlflowException, OSError) as err:
            raise UserError(f"model.init_from={source}: no checkpoint for that MLflow run in {tracking_uri} "
                            f"({str(err).splitlines()[0]})") from None
    raise UserError(f"model.init_from={source} is neither a checkpoint file nor an MLflow run id")


def load_into(net: nn.Module, checkpoint: Path) -> dict[str, list[str]]:
    """Copy matching tensors into `net`; returns what was copied, what kept its fresh values, and why."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise UserError(f"model.init_from: cannot read {checkpoint} as a checkpoint ({err})") from None
    state = state.get("state_dict", state)
    # A run trained with model.optim.ema was evaluated with its averaged weights: start from those.
    prefix = AVERAGED_PREFIX if any(k.startswith(AVERAGED_PREFIX) for k in state) else "net."
    state = {k.removeprefix(prefix): v for k, v in state.items()}  # the other network's keys then match nothing
    own = net.state_dict()
    copied = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise UserError(f"model.init_from: nothing in {checkpoint} matches this model (another architecture?)")
    net.load_state_dict(copied, strict=False)
    fresh = sorted(k for k in own if k not in copied)
    if fresh:
        log.info("init_from: %d tensors copied, %d kept fresh (%s)", len(copied), len(fresh), ", ".join(fresh[:6]))
    return {"copied": sorted(copied), "fresh": fresh}
