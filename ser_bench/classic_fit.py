"""What fitting a model gives the run (`Fitted`), and the fit of the classic baselines (scikit-learn, no Lightning).

train.run decides how a model trains (`fit_lightning` there, `fit` here) and then logs every run the same way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


@dataclass
class Fitted:
    history: list[dict]  # one dict per epoch: train/loss, train/acc, val/loss, val/acc, val/ua, val/wa, gap/acc
    test_predictions: list[tuple[int, int, list[float]]]  # (row, label, probabilities) of the test clips
    val_predictions: list[tuple[int, int, list[float]]]  # the same for the validation clips, from the tested weights
    test_metrics: dict[str, float]  # test/ua, test/wa, test/macro_f1
    checkpoint: str | None  # the tested weights as a file (`net.`-prefixed state dict)
    tested: nn.Module  # the network as tested
    params: int
    omit: set[str] = field(default_factory=set)  # frozen pretrained parameters the model folder leaves out


def fit(net, datamodule, class_names: list[str], out: Path) -> Fitted:
    """Fit a `models.classic.FunctionalsClassifier` on the training rows, choose its hyperparameters on the
    validation rows and score the test rows once, with the chosen setting only."""
    features = np.stack([np.asarray(f, dtype=np.float64) for f in datamodule.waves])
    labels = np.asarray(datamodule.labels)
    n = len(class_names)
    rows = {"train": datamodule.train_rows, "val": datamodule.split.val, "test": datamodule.split.test}
    grid = net.fit(features[rows["train"]], labels[rows["train"]], features[rows["val"]], labels[rows["val"]], n)
    chosen = next(g for g in grid if g["chosen"])
    mlflow.log_text(_table(grid), "grid.csv")
    mlflow.log_metrics({f"chosen/{k}": v for k, v in chosen.items() if k in ("C", "gamma")})

    scores = {part: _score(net, features, labels, r, n) for part, r in rows.items()}
    train, val, test = scores["train"], scores["val"], scores["test"]
    history = [{"epoch": 0, "train/loss": train["loss"], "train/acc": train["wa"], "val/loss": val["loss"],
                "val/acc": val["wa"], "val/ua": val["ua"], "val/wa": val["wa"], "gap/acc": train["wa"] - val["wa"]}]
    mlflow.log_metrics({k: v for k, v in history[0].items() if k != "epoch"}, step=0)
    checkpoint = Path(out) / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, checkpoint)
    return Fitted(history, test["rows"], val["rows"],
                  {"test/ua": test["ua"], "test/wa": test["wa"], "test/macro_f1": test["f1"]}, str(checkpoint),
                  net.eval(), sum(t.numel() for t in net.state_dict().values()))


def _score(net, features: np.ndarray, labels: np.ndarray, rows: np.ndarray, n: int) -> dict:
    """UA, WA, macro-F1 and cross-entropy of `rows` (torchmetrics, as the Lightning path computes them)."""
    if not len(rows):
        return {"ua": 0.0, "wa": 0.0, "f1": 0.0, "loss": float("nan"), "rows": []}
    with torch.no_grad():
        logits = net(torch.from_numpy(features[rows]).float(), None)
    target = torch.from_numpy(labels[rows])
    probs = logits.softmax(-1)
    return {"ua": float(MulticlassAccuracy(n, average="macro")(logits, target)),
            "wa": float(MulticlassAccuracy(n, average="micro")(logits, target)),
            "f1": float(MulticlassF1Score(n, average="macro")(logits, target)),
            "loss": float(F.cross_entropy(logits, target)),
            "rows": [(int(r), int(y), p.tolist()) for r, y, p in zip(rows, labels[rows], probs)]}


def _table(grid: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(grid[0]))
    writer.writeheader()
    writer.writerows(grid)
    return buf.getvalue()
