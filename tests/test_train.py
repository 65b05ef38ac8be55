"""Training end to end on the tiny corpus: a smoke run per model, overfitting, seeding, failed runs."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ser_bench import train
from ser_bench.data.cache import load_waveforms
from ser_bench.data.datamodule import SERDataModule
from ser_bench.data.manifest import EMOTIONS, label_ids
from ser_bench.data.splits import Split
from ser_bench.errors import UserError
from ser_bench.models import init
from ser_bench.models.module import SERModule

from .conftest import CONF, compose_cfg, model_overrides

# The gradient-trained models, with an epoch each; the classic baselines are fitted once (tests/test_baselines.py).
MODELS = sorted(p.stem for p in CONF.glob("model/*.yaml")
                if not compose_cfg([f"model={p.stem}"]).model.net._target_.startswith("ser_bench.models.classic."))


def _runs(cfg):
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    return client, client.search_runs([exp.experiment_id])


@pytest.mark.parametrize("model", MODELS)
def test_smoke_run_logs_everything(make_cfg, model, tiny_pretrained):
    cfg = make_cfg(*model_overrides(model, tiny_pretrained))
    result = train.run(cfg)
    m = result["metrics"]
    for key in ("test/ua", "test/wa", "test/macro_f1"):
        assert 0.0 <= m[key] <= 1.0
    client, runs = _runs(cfg)
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.tags["model"] == model and run.data.tags["split"] == "emobox"
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/ua", "gap/acc"):
        assert [h.step for h in client.get_metric_history(run.info.run_id, key)] == [0, 1]
    assert run.data.metrics["test/ua"] == pytest.approx(m["test/ua"])
    assert run.data.params["model.name"] == model


def test_overfits_a_handful_of_clips(tiny_manifest, cache_dir):
    L.seed_everything(0)
    rows = np.array([i for i, u in enumerate(tiny_manifest) if u.actor in (2, 3)])  # 16 clips, 8 emotions
    waves = load_waveforms([u.path for u in tiny_manifest], cache_dir)
    split = Split("overfit", 0, rows, rows, rows)  # deliberately the same clips everywhere
    dm = SERDataModule(waves, label_ids(tiny_manifest, EMOTIONS), split, batch_size=16)
    net_cfg = OmegaConf.load(CONF / "model" / "cnn1d.yaml").net
    module = SERModule(instantiate(net_cfg, num_classes=8), list(EMOTIONS), lr=3e-3, scheduler="none")
    trainer = L.Trainer(max_epochs=60, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    assert trainer.callback_metrics["test/wa"] == 1.0



def test_same_seed_same_test_metrics(make_cfg, tmp_path):
    first = train.run(make_cfg("seed=3"))["metrics"]
    second = train.run(make_cfg("seed=3", "tracking.experiment=again", f"paths.output_dir={tmp_path}/out2"))["metrics"]
    for key in ("test/ua", "test/wa", "test/macro_f1"):
        assert first[key] == second[key]


def test_crash_ends_run_failed_with_error(make_cfg, monkeypatch):
    cfg = make_cfg()

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(L.Trainer, "fit", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train.run(cfg)
    _, (run,) = _runs(cfg)
    assert run.info.status == "FAILED"
    assert "disk on fire" in run.data.tags["error"]


def test_interrupt_ends_run_killed(make_cfg, monkeypatch):
    cfg = make_cfg()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(L.Trainer, "fit", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg)
    _, (run,) = _runs(cfg)
    assert run.info.status == "KILLED"


def test_init_from_a_run_id_or_a_checkpoint(make_cfg, tmp_path):
    """Transfer: a model trained on one run starts another; the source is tagged; bad sources are one line."""
    source = train.run(make_cfg("trainer.max_epochs=1"))
    ckpt = tmp_path / "out" / "checkpoints" / "best.ckpt"
    trained = torch.load(ckpt, map_location="cpu")["state_dict"]
    for init_from in (source["run_id"], str(ckpt)):
        net = instantiate(make_cfg().model.net, num_classes=8)
        report = init.load_into(net, init.resolve(init_from, make_cfg().tracking.uri))
        assert not report["fresh"]
        assert all(torch.equal(v, trained[f"net.{k}"]) for k, v in net.state_dict().items())
    cfg = make_cfg("trainer.max_epochs=1", f"model.init_from={source['run_id']}", f"paths.output_dir={tmp_path}/out2")
    result = train.run(cfg)
    run = MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.tags["init_from"] == source["run_id"]
    # Another label set: the head keeps fresh weights, everything else is copied.
    other = instantiate(make_cfg().model.net, num_classes=4)
    report = init.load_into(other, ckpt)
    assert report["fresh"] == ["head.1.bias", "head.1.weight"]
    with pytest.raises(UserError, match="neither a checkpoint file nor an MLflow run id"):
        train.run(make_cfg("model.init_from=/no/such.ckpt"))


def test_cross_corpus_run_tags_both_corpora_and_counts_dropped_clips(make_cfg):
    """Train on one synthetic corpus, test on every speaker of another (another seed, another name)."""
    cfg = make_cfg("split=cross", "eval_data=synthetic", "eval_data.corpus=synthetic_b", "eval_data.seed=1",
                   *(f"eval_data.{o.split('.', 1)[1]}" for o in ("data.intensities=[1]", "data.statements=1",
                                                                  "data.repetitions=1")), "labels=four")
    result = train.run(cfg)
    assert result["split"]["test_corpora"] == ["synthetic_b"] and result["split"]["train_corpora"] == ["synthetic"]
    assert len(result["split"]["test_actors"]) == 24
    _, (run,) = _runs(cfg)
    tags = run.data.tags
    assert tags["corpus"] == "synthetic→synthetic_b" and tags["split"] == "cross" and tags["labels"] == "four"
    assert tags["folds.total"] == "1"
    # Both corpora lose their fearful, disgust and surprised clips (24 each: 24 actors, one clip per emotion).
    assert tags["labels.dropped"] == " ".join(f"{c}:{e}=24" for c in ("synthetic", "synthetic_b")
                                              for e in ("disgust", "fearful", "surprised"))
    assert run.data.metrics["test/ua"] == pytest.approx(result["metrics"]["test/ua"])
    client = MlflowClient(cfg.tracking.uri)  # 4 classes, calm folded into neutral
    header = open(client.download_artifacts(run.info.run_id, "confusion_matrix.csv")).readline().strip()
    assert header == "true\\pred,neutral,happy,sad,angry"


def test_log_mel_is_cached_per_clip_set_and_kept_in_the_config_hash(make_cfg, cache_dir, tmp_path):
    from ser_bench.result_key import config_hash

    cfg = make_cfg("model=cnn2d", f"cache_dir={tmp_path}/cache")
    train.run(cfg)
    (entry,) = (tmp_path / "cache" / "log_mel").glob("*/offsets.npy")
    online = make_cfg("augment=noise", "augment.mode=online", f"cache_dir={tmp_path}/cache",
                      f"paths.output_dir={tmp_path}/online")
    train.run(online)  # online waveform augmentation changes the clips every epoch: no log-mel cache
    assert len(list((tmp_path / "cache" / "log_mel").glob("*/offsets.npy"))) == 1
    # it changes the last frames of each batch's longest clip, and training amplifies that (ser_bench.result_key)
    assert config_hash(cfg) != config_hash(make_cfg("model=cnn2d", "cache_log_mel=false"))


def test_mixup_and_attentive_pooling_train_and_change_the_config_hash(make_cfg):
    from ser_bench.result_key import config_hash

    cfg = make_cfg("model.net.pool=attentive", "model.optim.mixup=0.4", "model.optim.label_smoothing=0.1")
    result = train.run(cfg)
    assert 0.0 <= result["metrics"]["test/ua"] <= 1.0
    _, (run,) = _runs(cfg)
    assert run.info.status == "FINISHED" and run.data.params["model.optim.mixup"] == "0.4"
    hashes = {config_hash(make_cfg(*o)) for o in ([], ["model.net.pool=attentive"], ["model.optim.mixup=0.4"])}
    assert len(hashes) == 3
    with pytest.raises(UserError, match="model.optim.mixup=-1: must be a number >= 0"):
        train.run(make_cfg("model.optim.mixup=-1"))


def test_speaker_normalisation_is_tagged_transductive_and_needs_the_log_mel_cache(make_cfg, tmp_path):
    cfg = make_cfg("model.net.frontend.norm=speaker", "augment=noise")  # offline copies take their source's speaker
    train.run(cfg)
    _, (run,) = _runs(cfg)
    assert run.info.status == "FINISHED" and "test actors" in run.data.tags["transductive"]
    plain = make_cfg(f"tracking.uri=sqlite:///{tmp_path}/plain.db", f"paths.output_dir={tmp_path}/plain")
    train.run(plain)
    _, (run,) = _runs(plain)
    assert "transductive" not in run.data.tags
    with pytest.raises(UserError, match="cache_log_mel=true"):
        train.run(make_cfg("model.net.frontend.norm=speaker", "cache_log_mel=false", f"paths.output_dir={tmp_path}/x"))
    with pytest.raises(UserError, match="offline"):  # before any audio is decoded or copied into the fresh cache
        train.run(make_cfg("model.net.frontend.norm=speaker", "augment=noise", "augment.mode=online",
                           f"cache_dir={tmp_path}/fresh_cache"))
    assert [p.name for p in (tmp_path / "fresh_cache").iterdir()] == ["synthetic"]  # only the generated corpus


@pytest.mark.parametrize("model", ["cnn1d", "wav2vec2"])  # wav2vec2: its own optimiser groups, plus the adversary
def test_speaker_adversary_uses_the_training_speakers_only(make_cfg, model, tiny_pretrained):
    cfg = make_cfg(*model_overrides(model, tiny_pretrained), "model.optim.speaker_adversarial=0.5",
                   "augment=noise")  # one offline copy per clip
    manifest, _, _ = train.corpus_and_labels(cfg)
    split = instantiate(cfg.split)(manifest)
    n = len(manifest)
    speakers = train.training_speakers(manifest, split, 2 * n)
    n_train = len({manifest[r].speaker for r in split.train})
    assert sorted(set(speakers[torch.as_tensor(split.train)].tolist())) == list(range(n_train))
    assert (speakers[torch.as_tensor(np.concatenate([split.val, split.test]))] == -1).all()
    assert torch.equal(speakers[n:], speakers[:n])  # a copy is its source clip's speaker
    train.run(cfg)
    client, (run,) = _runs(cfg)
    accuracy = [m.value for m in client.get_metric_history(run.info.run_id, "train/speaker_acc")]
    assert run.info.status == "FINISHED" and len(accuracy) == 2 and all(0 < a <= 1 for a in accuracy)


@pytest.mark.parametrize("model", ["cnn1d", "wav2vec2"])  # wav2vec2: a frozen encoder, left out of checkpoints
def test_ema_runs_checkpoint_the_averaged_weights(make_cfg, model, tiny_pretrained, tmp_path):
    """The best checkpoint holds the averaged network beside the live one (the test pass loads it strictly,
    so a missing average would fail the run), and a transfer from it starts from the average."""
    from ser_bench.result_key import config_hash

    cfg = make_cfg(*model_overrides(model, tiny_pretrained), "model.optim.ema=0.9")
    assert config_hash(cfg) != config_hash(make_cfg(*model_overrides(model, tiny_pretrained)))
    train.run(cfg)
    _, (run,) = _runs(cfg)
    assert run.info.status == "FINISHED" and run.data.params["model.optim.ema"] == "0.9"
    ckpt = tmp_path / "out" / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, map_location="cpu")["state_dict"]
    live = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    averaged = {k.removeprefix("ema_net.module."): v for k, v in state.items() if k.startswith("ema_net.module.")}
    assert averaged.keys() == live.keys() and any(not torch.equal(averaged[k], live[k]) for k in live)
    net = instantiate(cfg.model.net, num_classes=8)
    init.load_into(net, ckpt)
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in averaged.items())
    with pytest.raises(UserError, match=r"model.optim.ema=1.5: must be a number in \[0, 1\)"):
        train.run(make_cfg("model.optim.ema=1.5"))


@pytest.mark.parametrize("precision, accelerator, has_bf16, warned", [
    ("bf16-mixed", "auto", False, True), ("bf16-mixed", "cpu", False, True), ("bf16-mixed", "cpu", True, False),
    ("32-true", "cpu", False, False)])
def test_bf16_on_a_cpu_without_bf16_units_is_warned_about(precision, accelerator, has_bf16, warned, monkeypatch,
                                                          caplog):
    monkeypatch.setattr(train, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("WARNING", logger="ser_bench.train"):
        train.warn_slow_precision(precision, accelerator)
    assert ("without bfloat16 units" in caplog.text) == warned
    if warned:
        assert "trainer.precision=32-true" in caplog.text


def test_the_bf16_probe_answers_a_bool():
    assert isinstance(train.cpu_has_bf16(), bool)
