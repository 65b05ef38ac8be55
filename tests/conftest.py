"""Shared fixtures: the real Hydra config composed with tiny overrides, and a tiny synthetic corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import DictConfig

from ser_bench.bench.common import compose_train as compose_cfg  # the config as `python -m ser_bench` composes it
from ser_bench.data import synthetic

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
REAL_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess"

# 24 actors x 8 emotions, one clip each: every split protocol works, and it generates in ~2 s.
TINY_CORPUS = ["data.intensities=[1]", "data.statements=1", "data.repetitions=1"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_manifest(cache_dir):
    return synthetic.load(cache_dir, seed=0, intensities=[1], statements=1, repetitions=1)


def tiny_overrides(cache_dir: Path, tmp_path: Path, corpus: bool = True) -> list[str]:
    """Overrides that make a real run finish in seconds and write only under tmp_path."""
    return [*(TINY_CORPUS if corpus else []), f"cache_dir={cache_dir}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "early_stopping.patience=0"]


def finished_and_failed(tmp_path: Path):
    """The runs of a sweep over `model.optim.lr=0.003,1e30` logged to tmp_path/mlflow.db, checked: one job FINISHED, the
    diverging one FAILED, both nested under the sweep's parent. Returns (client, experiment id, parent, jobs by lr)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("ser_bench").experiment_id
    runs = client.search_runs([exp])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    jobs = {r.data.params["model.optim.lr"]: r for r in runs if r.data.tags.get("kind") != "sweep"}
    assert jobs["0.003"].info.status == "FINISHED" and jobs["1e+30"].info.status == "FAILED"
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs.values())
    return client, exp, parent, jobs


@pytest.fixture
def make_cfg(cache_dir, tmp_path):
    def make(*overrides: str) -> DictConfig:
        synthetic_corpus = not any(o.startswith("data=") for o in overrides)
        return compose_cfg([*tiny_overrides(cache_dir, tmp_path, synthetic_corpus),
                            f"paths.output_dir={tmp_path}/out", *overrides])
    return make


def write_wav(path: Path, actor: int = 1, emotion: int = 1, sample_rate: int = 48_000, channels: int = 1,
              seconds: float | None = None) -> np.ndarray:
    """A synthetic utterance written as PCM-16 WAV at `sample_rate` with `channels` channels."""
    import torch
    import torchaudio.functional as AF

    wave = synthetic.synthesize(actor, emotion, 1, 1, 1, seed=0)
    if seconds is not None:
        wave = np.resize(wave, int(seconds * synthetic.SR))
    if sample_rate != synthetic.SR:
        wave = AF.resample(torch.from_numpy(wave), synthetic.SR, sample_rate).numpy()
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
    return wave


# Tiny randomly initialised encoders saved as local checkpoints: the real `model.pretrained` loading
# path runs, and nothing is fetched from the hub.
TINY_SSL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2)


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> dict[str, Path]:
    import torch

    from ser_bench.models.ssl import _architecture

    out = {}
    for arch in ("wav2vec2", "hubert", "wavlm"):
        config_cls, model_cls = _architecture(arch)
        torch.manual_seed(0)
        path = tmp_path_factory.mktemp(f"tiny-{arch}")
        model_cls(config_cls(**TINY_SSL)).save_pretrained(path)
        out[arch] = path
    return out


FAST_CREPE = "model.net.hop_ms=64"  # CREPE: a frame every 64 ms, a third of the default's frames, the same code path


def model_overrides(model: str, tiny_pretrained: dict[str, Path]) -> list[str]:
    """`model=NAME`, plus a tiny local checkpoint for the models that load pretrained weights (and CREPE's fast
    hop)."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    arch = node.get("net", {}).get("arch")  # the transformers encoders; ge2e and crepe load their packaged weights
    return ([f"model={model}"] + ([f"model.pretrained={tiny_pretrained[arch]}"] if arch else [])
            + ([FAST_CREPE] if model == "crepe" else []))


def alone_and_batched(net, lengths: list[int]):
    """A model's outputs for clips of `lengths` padded together in one batch, and for each clip alone."""
    import torch

    lengths = torch.tensor(lengths)
    wave = torch.randn(len(lengths), int(lengths.max())) * 0.1
    for i, n in enumerate(lengths):
        wave[i, n:] = 0
    with torch.no_grad():
        batched = net(wave, lengths)
        alone = torch.cat([net(wave[i:i + 1, :n], lengths[i:i + 1]) for i, n in enumerate(lengths)])
    return batched, alone


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One MLflow store for the runs the inference tests train (each configuration trained once per session)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def trained(store, cache_dir):
    """`trained(*overrides)` -> the finished run (an MLflow Run) of a tiny real training, trained once per session."""
    from mlflow.tracking import MlflowClient

    from ser_bench import train

    runs = {}

    def make(*overrides: str):
        if overrides not in runs:
            cfg = compose_cfg([*tiny_overrides(cache_dir, store), f"paths.output_dir={store}/out{len(runs)}",
                               *overrides])
            result = train.run(cfg)
            runs[overrides] = MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
        return runs[overrides]

    make.uri = f"sqlite:///{store}/mlflow.db"
    return make
