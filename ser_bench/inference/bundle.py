"""The self-contained model folder: what a finished run's network needs to score new audio, and nothing else.

    ser_model.json        format, class names, the network's config (`_target_` + arguments), preprocessing,
                          the validation temperature, and where it came from (run, protocol, test figures)
    weights.safetensors   the evaluated weights (the moving average where the run used one)

No pickle anywhere: weights are safetensors, the config is JSON, and only `_target_`s inside
`ser_bench.models` are ever instantiated. The parameters of a frozen pretrained encoder are left out and
come from its checkpoint id (a hub id or folder) at load time, so a frozen wav2vec2 model stays about a
megabyte.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import nn

from ser_bench.errors import UserError
from ser_bench.inference.scorer import Scorer
from ser_bench.models import base

log = logging.getLogger(__name__)

FORMAT, VERSION = "ser_bench model", 1
META, WEIGHTS = "ser_model.json", "weights.safetensors"
TARGET_PREFIX = "ser_bench.models."


def referenced_parameters(net: nn.Module) -> set[str]:
    """Parameters that never trained and come from a pretrained checkpoint id (frozen encoder weights)."""
    if not base.is_encoder(net) or net.pretrained is None:
        return set()
    return {name for name, p in net.named_parameters() if not p.requires_grad}


def save(folder: Path, net: nn.Module, net_spec: dict, class_names: list[str], *, temperature: float,
         window_seconds: float | None, precision: str = "32-true", omit: set[str] = frozenset(),
         source: dict | None = None, calibrated: bool = True) -> Path:
    """Write the model folder. `net` is the evaluated network, `net_spec` the config it was built from (without
    `num_classes`), `omit` the state keys that its checkpoint id provides (`referenced_parameters`)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items() if k not in omit}
    save_file(state, str(folder / WEIGHTS))
    frontend = getattr(net, "frontend", None)
    tail = int(frontend.mel.n_fft // 2) if frontend is not None and hasattr(frontend, "mel") else 0
    meta = {
        "format": FORMAT, "version": VERSION, "class_names": list(class_names),
        "net": {**net_spec, "num_classes": len(class_names)},
        "preprocessing": {"sample_rate": 16_000, "channels": "mean of all channels",
                          "resampling": "libsoxr HQ (soxr.resample)", "window_seconds": window_seconds,
                          "hop_seconds": window_seconds / 2 if window_seconds else None, "tail_samples": tail,
                          "precision": precision},
        "temperature": float(temperature),
        "calibrated": bool(calibrated),  # False: no validation predictions, so T stays 1 (the live app refuses it)
        "omitted": sorted(omit),
        "encoder_weights": net.weights_id() if omit else None,
        "source": source or {},
    }
    (folder / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{folder} is not a ser_bench model folder ({META}: {err})") from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise UserError(f"{path} is not a ser_bench model description")
    if meta["version"] > VERSION:
        raise UserError(f"{folder} was written by a newer ser_bench (model format {meta['version']}); upgrade")
    return meta


def _targets(node) -> list[str]:
    if isinstance(node, dict):
        return [t for t in [node.get("_target_")] if t] + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def build_net(spec: dict) -> nn.Module:
    """The network of a model folder; refuses any `_target_` outside ser_bench.models (a model folder is data)."""
    from hydra.utils import instantiate

    foreign = [t for t in _targets(spec) if not str(t).startswith(TARGET_PREFIX)]
    if foreign or not _targets(spec):
        raise UserError(f"refusing to build {', '.join(foreign) or 'a network without _target_'}: a ser_bench "
                        f"model folder only builds classes from {TARGET_PREFIX}*")
    ssl_log = logging.getLogger("ser_bench.models.ssl")
    level = ssl_log.level
    ssl_log.setLevel(logging.ERROR)  # "random weights" is not news: the trained weights are loaded next
    try:
        return instantiate(spec, _convert_="all")
    finally:
        ssl_log.setLevel(level)


def load(folder: Path, batch_size: int = 16) -> Scorer:
    """A Scorer from a model folder (written by `save`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_meta(folder)
    net = build_net(meta["net"])
    try:
        state = load_file(str(folder / WEIGHTS))
    except (OSError, SafetensorError) as err:
        raise UserError(f"cannot read the weights of {folder} ({WEIGHTS}: {err}); export the model again") from None
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - set(meta["omitted"]):
        raise UserError(f"the weights in {folder} do not fit its network ({len(unexpected)} unexpected, "
                        f"{len(set(missing) - set(meta['omitted']))} missing tensors); export the model again")
    if meta["omitted"] and meta.get("encoder_weights") != net.weights_id():
        log.warning("%s: the frozen encoder's weights (%s) are not the ones the model was trained with (%s)",
                    folder, net.weights_id(), meta.get("encoder_weights"))
    pre = meta["preprocessing"]
    base.check(net, len(meta["class_names"]))
    return Scorer(net, meta["class_names"], meta["temperature"], pre["sample_rate"], pre["window_seconds"],
                  pre["hop_seconds"], pre["tail_samples"], pre.get("precision", "32-true"),
                  {"name": describe(meta), "calibrated": meta.get("calibrated", meta["temperature"] != 1.0),
                   **meta["source"]}, batch_size)


def describe(meta: dict) -> str:
    """A short name: model, corpus, protocol and fold, and the run it came from."""
    s = meta.get("source", {})
    parts = [s.get("model") or meta["net"]["_target_"].rsplit(".", 1)[-1]]
    if s.get("split"):
        parts.append(f"{s.get('corpus', '?')} {s['split']} fold {s.get('fold', '?')}")
    if s.get("run_id"):
        parts.append(f"run {s['run_id'][:8]}")
    return " · ".join(parts)
