"""The one model contract: what training, the caches, ensembles and inference rely on in a network.

A network (`model.net` in `conf/model/*.yaml`, built by Hydra with `num_classes`) is an `nn.Module` with
- `forward(wave [B, T] float32 at 16 kHz, lengths [B] samples) -> logits [B, num_classes]`, padding past
  each clip's length never changing its result;
- `head`: the module that maps the clip embedding to the logits, holding at least one `nn.Linear`
  (the speaker adversary reads the first one's input width; the last one's outputs are the classes).

Two optional families add more:
- a log-mel network has `frontend` (`frontends.LogMel` or alike): `n_mels`, `precomputed` (a flag the log-mel
  cache sets: forward then receives cached `raw` features), `raw`, `frame_lengths` and `settings`;
- a pretrained encoder has `mode` (one of ENCODER_MODES), `pretrained` (where its weights came from, None
  for random ones), `weights_id()` (what identifies those weights, None for random ones), `features_id()` (what
  identifies its frozen features, random weights included), `provenance()` (MLflow tags), `layer_weights`
  (one learnable weight per hidden layer), `layer_features(wave, lengths) -> [B, layers, hidden]`,
  `precomputed` (set by the frozen-feature cache) and `param_groups(lr)`; `models.encoder.EncoderClassifier`
  provides all of it but the encoder.
A classic baseline has `functionals` (features computed outside torch, cached per corpus), `precomputed` and
`fit(x_train, y_train, x_val, y_val, num_classes)`, which chooses its hyperparameters on the validation rows.
Any network may define `param_groups(lr) -> list[dict]` for its own optimiser groups.

`check` enforces this; train.run calls it on every network it builds and a test on every yaml.
"""

from __future__ import annotations

import torch
from torch import nn

AVERAGED_PREFIX = "ema_net.module."  # checkpoint keys of the averaged network (`model.optim.ema` > 0)
ENCODER_MODES = ("frozen", "finetune", "full")
FRONTEND_MEMBERS = ("n_mels", "precomputed", "raw", "frame_lengths", "settings")
ENCODER_MEMBERS = ("mode", "pretrained", "weights_id", "features_id", "provenance", "layer_weights",
                   "layer_features", "precomputed", "param_groups")


class ContractError(TypeError):
    """A network that does not satisfy the model contract (a programming error, not a user's)."""


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def is_log_mel(net: nn.Module) -> bool:
    return getattr(net, "frontend", None) is not None


def is_fitted(net: nn.Module) -> bool:
    """A classic baseline (`models.classic`): fitted by scikit-learn on cached `functionals`, not by gradients."""
    return callable(getattr(net, "fit", None)) and hasattr(net, "functionals")


def is_encoder(net: nn.Module) -> bool:
    return hasattr(net, "layer_features")


def check(net: nn.Module, num_classes: int, forward: bool = False) -> nn.Module:
    """`net` if it satisfies the contract; else a ContractError saying what is missing. `forward=True` also runs
    two short clips of different lengths through it (eval mode, no gradients) and checks the logits."""
    name = type(net).__name__
    problems = []
    if not isinstance(net, nn.Module):
        raise ContractError(f"{name} is not a torch nn.Module")
    head = getattr(net, "head", None)
    if not isinstance(head, nn.Module) or not linears(head):
        problems.append("`head` must be a module holding at least one nn.Linear")
    elif linears(head)[-1].out_features != num_classes:
        problems.append(f"the last Linear of `head` has {linears(head)[-1].out_features} outputs, "
                        f"not num_classes={num_classes}")
    if is_log_mel(net):
        missing = [m for m in FRONTEND_MEMBERS if not hasattr(net.frontend, m)]
        if missing:
            problems.append(f"`frontend` lacks {', '.join(missing)}")
    if is_encoder(net):
        missing = [m for m in ENCODER_MEMBERS if not hasattr(net, m)]
        if missing:
            problems.append(f"an encoder network lacks {', '.join(missing)}")
        elif net.mode not in ENCODER_MODES:
            problems.append(f"`mode` must be one of {', '.join(ENCODER_MODES)}, not {net.mode!r}")
        elif not isinstance(net.layer_weights, nn.Parameter):
            problems.append("`layer_weights` must be an nn.Parameter")
    if hasattr(net, "param_groups") and not callable(net.param_groups):
        problems.append("`param_groups` must be a method taking the learning rate")
    if problems:
        raise ContractError(f"{name} breaks the model contract (ser_bench/models/base.py): {'; '.join(problems)}")
    if forward:
        _check_forward(net, num_classes)
    return net


def _check_forward(net: nn.Module, num_classes: int) -> None:
    was_training = net.training
    net.eval()
    generator = torch.Generator().manual_seed(0)
    wave = torch.randn(2, 8_000, generator=generator) * 0.1
    lengths = torch.tensor([8_000, 5_000])
    wave[1, 5_000:] = 0
    try:
        with torch.no_grad():
            logits = net(wave, lengths)
            alone = net(wave[1:, :5_000], lengths[1:])
    finally:
        net.train(was_training)
    if tuple(logits.shape) != (2, num_classes) or not torch.isfinite(logits).all():
        raise ContractError(f"{type(net).__name__}(wave [2, T], lengths [2]) must give finite logits of shape "
                            f"[2, {num_classes}], not {tuple(logits.shape)}")
    if not torch.allclose(logits[1].softmax(-1), alone[0].softmax(-1), atol=1e-3):
        raise ContractError(f"{type(net).__name__}: a padded clip scores differently from the clip alone")
