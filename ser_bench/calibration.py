"""Temperature scaling (Guo et al., 2017) and expected calibration error, on class probabilities.

A run fits one temperature T on its validation actors' predictions at the tested checkpoint (the rows of
`val_predictions.csv`, never the test actors'); its model then reports softmax(logits / T). Scaling keeps
every argmax, so UA, WA and macro-F1 stay as tested, while the confidences become honest enough for
`--abstain` to mean something. Probabilities stand in for logits: log p differs from the logits by a
per-clip constant, which the softmax cancels.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

N_BINS = 15
FLOOR = 1e-6  # logged probabilities are rounded to 5 decimals: a 0 there is below 5e-6, not impossible
BOUNDS = (0.05, 20.0)  # temperatures outside these are a broken model, not a calibration


def from_rows(rows: list[dict], class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C], labels [N]) from prediction rows (`true`, `p_<class>`, as a run logs them)."""
    index = {c: i for i, c in enumerate(class_names)}
    probs = np.array([[float(r[f"p_{c}"]) for c in class_names] for r in rows], dtype=np.float64)
    labels = np.array([index[r["true"]] for r in rows], dtype=np.int64)
    return probs.reshape(len(rows), len(class_names)), labels


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row."""
    return softmax(np.log(np.maximum(probs, FLOOR)) / temperature, axis=1)


def nll(probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    logp = log_softmax(np.log(np.maximum(probs, FLOOR)) / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the negative log-likelihood of `labels` (1.0 without clips to fit on)."""
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: nll(probs, labels, float(np.exp(log_t))), method="bounded",
                             bounds=tuple(np.log(BOUNDS)), options={"xatol": 1e-4})
    return float(np.exp(result.x))


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, ...]:
    """Per equal-width confidence bin: (mean confidence, accuracy, clip count); empty bins hold NaN."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    return conf, acc, counts


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the top-class confidence over `n_bins` equal-width bins (L1, weighted by
    the clips in each bin), as torchmetrics' MulticlassCalibrationError defines it."""
    if len(labels) == 0:
        return float("nan")
    conf, acc, counts = reliability(probs, labels, n_bins)
    filled = counts > 0
    return float(np.sum(np.abs(conf[filled] - acc[filled]) * counts[filled]) / counts.sum())


def summary(val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The temperature fitted on `val` (probabilities, labels) and the ECE before and after it, on validation
    and, where given, on test clips (scored with the validation temperature, never fitted on them)."""
    temperature = fit_temperature(*val)
    out = {"calibration/temperature": temperature, "val/ece": ece(*val),
           "val/ece_calibrated": ece(scaled(val[0], temperature), val[1])}
    if test is not None:
        out["test/ece"] = ece(*test)
        out["test/ece_calibrated"] = ece(scaled(test[0], temperature), test[1])
    return out
