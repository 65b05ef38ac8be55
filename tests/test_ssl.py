"""wav2vec2-family models on tiny local checkpoints: frozen stays frozen, two learning rates in
finetune mode, padding invariance on both encoder paths, random init labelled, the offline error."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from ser_bench import train
from ser_bench.data.cache import load_waveforms
from ser_bench.data.datamodule import SERDataModule
from ser_bench.data.manifest import EMOTIONS, label_ids
from ser_bench.data.splits import emobox
from ser_bench.models.module import SERModule
from ser_bench.models.ssl import SSLClassifier, _architecture

from .conftest import TINY_SSL, alone_and_batched, compose_cfg, model_overrides, tiny_overrides
from .test_cli import cli


def net_for(tiny_pretrained, *overrides):
    cfg = compose_cfg([*model_overrides("wav2vec2", tiny_pretrained), *overrides])
    return instantiate(cfg.model.net, num_classes=8)


def test_frozen_encoder_does_not_change_in_training(tiny_manifest, cache_dir, tiny_pretrained):
    net = net_for(tiny_pretrained, "model.mode=frozen")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    waves = load_waveforms([u.path for u in tiny_manifest], cache_dir)
    split = emobox(tiny_manifest, fold=0)
    dm = SERDataModule(waves, label_ids(tiny_manifest, EMOTIONS), split, batch_size=16, max_seconds=1.0)
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0).fit(SERModule(net, list(EMOTIONS), lr=1e-2), dm)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("encoder."))
    assert not all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("head."))


def test_frozen_checkpoints_leave_the_encoder_out(make_cfg, tiny_pretrained, tmp_path):
    result = train.run(make_cfg(*model_overrides("wav2vec2", tiny_pretrained), "model.mode=frozen"))
    saved = torch.load(tmp_path / "out" / "checkpoints" / "best.ckpt", map_location="cpu")["state_dict"]
    assert saved and not any(k.startswith("net.encoder.") and "weight" in k for k in saved)
    assert {"net.layer_weights", "net.head.0.weight"} <= set(saved)
    assert 0.0 <= result["metrics"]["test/ua"] <= 1.0  # the test pass loaded that checkpoint


def test_learning_rates_per_mode(tiny_pretrained):
    for mode, expected in (("frozen", ["head"]), ("finetune", ["head", "encoder"]), ("full", ["head", "encoder"])):
        net = net_for(tiny_pretrained, f"model.mode={mode}", "model.net.encoder_lr_scale=0.1")
        opt = SERModule(net, ["a"] * 8, lr=1e-3, scheduler="none").configure_optimizers()
        assert [g["name"] for g in opt.param_groups] == expected
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4][: len(expected)])
        in_groups = {id(p) for g in opt.param_groups for p in g["params"]}
        conv = {id(p) for p in net.encoder.feature_extractor.parameters()}
        assert conv.isdisjoint(in_groups) == (mode != "full")
        assert all(p.requires_grad for g in opt.param_groups for p in g["params"])


def test_frozen_encoder_stays_in_eval_mode(tiny_pretrained):
    net = net_for(tiny_pretrained, "model.mode=frozen").train()
    assert net.head.training and not net.encoder.training


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_a_clip_alone_or_padded_in_a_batch(tmp_path, norm):
    config_cls, model_cls = _architecture("wav2vec2")
    extra = {"feat_extract_norm": "layer", "do_stable_layer_norm": True} if norm == "layer" else {}
    torch.manual_seed(0)
    model_cls(config_cls(**TINY_SSL, **extra)).save_pretrained(tmp_path)
    net = SSLClassifier(8, pretrained=str(tmp_path), mode="full").eval()
    assert net.per_clip == (norm == "group")
    batched, alone = alone_and_batched(net, [3000, 9000, 16000])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


def test_random_init_is_labelled(make_cfg):
    import ser_bench.models.ssl as ssl

    cfg = make_cfg("model=wav2vec2", "model.pretrained=null", "model.mode=frozen")
    config_cls, _ = _architecture("wav2vec2")
    original = ssl._architecture
    ssl._architecture = lambda arch: (lambda: config_cls(**TINY_SSL), original(arch)[1])  # base size is slow here
    try:
        result = train.run(cfg)
    finally:
        ssl._architecture = original
    run = MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.tags["pretrained"] == "false" and "weights.id" not in run.data.tags


def test_missing_weights_offline_is_one_clear_line(cache_dir, tmp_path):
    env_before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        proc = cli("model=wav2vec2", "model.pretrained=nobody/no-such-checkpoint", *tiny_overrides(cache_dir, tmp_path),
                   f"hydra.run.dir={tmp_path}/run")
    finally:
        if env_before is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = env_before
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    for needle in ("nobody/no-such-checkpoint", "HF_HUB_OFFLINE", "model.pretrained=/path", "model.pretrained=null"):
        assert needle in line


def test_finetuned_encoder_trains_in_train_mode(tiny_pretrained):
    net = net_for(tiny_pretrained, "model.mode=finetune")
    assert net.training and net.encoder.training  # from_pretrained alone would leave it in eval mode


def test_gpu_settings_are_wired_through(make_cfg, tiny_pretrained):
    """bf16 autocast, gradient accumulation, gradient checkpointing and crops, on CPU: wiring only."""
    cfg = make_cfg(*model_overrides("wav2vec2", tiny_pretrained), "model.mode=finetune", "trainer.max_epochs=1",
                   "trainer.precision=bf16-mixed", "+trainer.accumulate_grad_batches=2",
                   "model.net.gradient_checkpointing=true", "loader.max_seconds=1.0")
    net = instantiate(cfg.model.net, num_classes=8)
    assert net.encoder.is_gradient_checkpointing
    result = train.run(cfg)
    run = MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.params["trainer.precision"] == "bf16-mixed"
    assert run.data.params["trainer.accumulate_grad_batches"] == "2"
    assert 0.0 <= result["metrics"]["test/ua"] <= 1.0


def test_frozen_features_are_computed_once_and_change_nothing(make_cfg, tiny_pretrained, tmp_path, monkeypatch):
    base = [*model_overrides("wav2vec2", tiny_pretrained), "model.mode=frozen", "trainer.max_epochs=2"]
    uncached = train.run(make_cfg(*base, "model.cache_features=false", f"paths.output_dir={tmp_path}/a"))
    cached = train.run(make_cfg(*base, f"paths.output_dir={tmp_path}/b"))  # computes the table
    for key in ("test/ua", "test/wa", "best/val_ua"):
        assert cached["metrics"][key] == pytest.approx(uncached["metrics"][key], abs=1e-6)
    monkeypatch.setattr(SSLClassifier, "layer_features", lambda *a: pytest.fail("the encoder ran again"))
    other_fold = train.run(make_cfg(*base, "split.fold=1", f"paths.output_dir={tmp_path}/c"))
    assert 0.0 <= other_fold["metrics"]["test/ua"] <= 1.0
