"""Temperature scaling and ECE: the arithmetic, torchmetrics' definition, and the validation-only fit in a real run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torchmetrics.functional.classification import multiclass_calibration_error

from ser_bench import calibration, train
from ser_bench.models.module import SERModule


def over_confident(n: int = 2000, classes: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips whose true probabilities are softmax(z) but whose model reports softmax(3 z): over-confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, classes))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in true])
    reported = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    return reported, labels


def test_temperature_undoes_over_confidence():
    probs, labels = over_confident()
    t = calibration.fit_temperature(probs, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    assert calibration.nll(probs, labels, t) < calibration.nll(probs, labels)
    assert calibration.ece(calibration.scaled(probs, t), labels) < calibration.ece(probs, labels) / 3
    assert (calibration.scaled(probs, t).argmax(1) == probs.argmax(1)).all()  # accuracy untouched
    assert calibration.fit_temperature(np.zeros((0, 6)), np.zeros(0, int)) == 1.0


def test_ece_is_torchmetrics_definition():
    probs, labels = over_confident(n=500, seed=1)
    for n_bins in (5, 15):
        expected = multiclass_calibration_error(torch.tensor(probs), torch.tensor(labels), num_classes=6,
                                                n_bins=n_bins, norm="l1")
        assert calibration.ece(probs, labels, n_bins) == pytest.approx(float(expected), abs=1e-6)


def _temperature(make_cfg, tmp_path, name: str) -> tuple[float, dict, list[dict]]:
    result = train.run(make_cfg("seed=4", f"tracking.experiment={name}", f"paths.output_dir={tmp_path}/{name}"))
    client = MlflowClient(result["tracking_uri"])
    run = client.get_run(result["run_id"])
    with open(client.download_artifacts(run.info.run_id, "val_predictions.csv", str(tmp_path / name))) as f:
        val = list(csv.DictReader(f))
    return run.data.metrics["calibration/temperature"], run.data.metrics, val


def test_the_temperature_comes_from_validation_actors_only(make_cfg, tmp_path, monkeypatch):
    """The same run twice, the second with its test probabilities scrambled: the temperature stays to the digit
    (and equals a fit on the logged validation rows), while the test ECE it reports moves."""
    t_clean, clean, val = _temperature(make_cfg, tmp_path, "clean")
    names = [k[2:] for k in val[0] if k.startswith("p_")]
    assert t_clean == pytest.approx(calibration.fit_temperature(*calibration.from_rows(val, names)), abs=1e-9)

    original = SERModule.on_test_epoch_end

    def scramble(self):
        original(self)
        n = len(self.test_predictions[0][2])  # every test clip confidently wrong
        self.test_predictions = [(row, label, [0.93 if i == (label + 1) % n else 0.01 for i in range(n)])
                                 for row, label, _ in self.test_predictions]

    monkeypatch.setattr(SERModule, "on_test_epoch_end", scramble)
    t_scrambled, scrambled, _ = _temperature(make_cfg, tmp_path, "scrambled")
    assert t_scrambled == t_clean
    assert scrambled["test/ece"] == pytest.approx(0.93, abs=1e-6) and clean["test/ece"] < 0.5
    assert clean["val/ece"] == scrambled["val/ece"]
