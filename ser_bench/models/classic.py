"""The field's classic baselines: openSMILE functionals (eGeMAPS, 88; ComParE-2016, 6373) with an SVM or a
logistic regression, fitted by scikit-learn and then held as a torch network.

Training (ser_bench.train) computes every clip's functionals once per corpus (cached like the log-mel), and
`fit` standardises them with the training actors' statistics, fits one classifier per hyperparameter setting of
the grid on the training rows, scores each on the validation actors (UA) and keeps the best (the first of equal
ones: the grid lists simpler settings first). The test actors play no part. The fitted pipeline is then copied
into tensors (the scaler's mean and scale, the support vectors, the weights), so the run's checkpoint, MLflow
model, `predict`, ensembles and the live app use it as any other network: `forward(wave, lengths) -> logits`,
the functionals of each clip's valid samples computed by openSMILE.

Classifiers (`classifier`, `kernel`):
- `svm`, `linear`: liblinear's one-vs-rest linear SVM (`LinearSVC`), C from `C`.
- `svm`, `rbf`: one RBF-kernel SVM per class against the rest (`SVC`), every (C, gamma) of the grid; `gamma`
  lists multiples of 1 / features (sklearn's "scale" for standardised inputs).
- `logistic`: multinomial logistic regression (`LogisticRegression`), C from `C`.
Scores are the decision values (log-odds for logistic regression); their softmax is the probability, and the
run's temperature, fitted on the validation actors, calibrates it as it does every model's.
"""

from __future__ import annotations

import logging
from importlib import metadata

import numpy as np
import torch
from torch import nn

from ser_bench.models.encoder import require

log = logging.getLogger(__name__)

FEATURE_SETS = ("eGeMAPSv02", "ComParE_2016")
CLASSIFIERS = {"svm": ("linear", "rbf"), "logistic": ("linear",)}


class Functionals(nn.Module):
    """openSMILE's functionals of each clip's valid samples: [B, features] float32 (no gradient)."""

    def __init__(self, feature_set: str = "eGeMAPSv02"):
        super().__init__()
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, not {feature_set!r}")
        opensmile = require("opensmile", "classic")
        self.feature_set = feature_set
        self.smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                                     feature_level=opensmile.FeatureLevel.Functionals)
        self.size = len(self.smile.feature_names)

    def settings(self) -> dict:
        """What determines the features (the cache keys on it)."""
        return {"feature_set": self.feature_set, "opensmile": metadata.version("opensmile")}

    def clip(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float32)
        if len(wave) < 1_600:  # under 0.1 s openSMILE has no frame to summarise
            wave = np.pad(wave, (0, 1_600 - len(wave)))
        feats = self.smile.process_signal(wave, 16_000).to_numpy(dtype=np.float32)[0]
        return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        clips = [w[: int(n)].detach().float().cpu().numpy() for w, n in zip(wave, lengths)]
        return torch.from_numpy(np.stack([self.clip(c) for c in clips])).to(wave.device)


class FunctionalsClassifier(nn.Module):
    precomputed = False  # True: forward receives cached functionals [B, features] (ser_bench.train)

    def __init__(self, num_classes: int, features: str = "eGeMAPSv02", classifier: str = "svm",
                 kernel: str = "rbf", C: list[float] = (0.1, 1.0, 10.0), gamma: list[float] = (0.1, 1.0),
                 class_weight: str | None = "balanced", max_iter: int = 10_000):
        super().__init__()
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, not {classifier!r}")
        if kernel not in CLASSIFIERS[classifier]:
            raise ValueError(f"kernel for {classifier} must be one of {', '.join(CLASSIFIERS[classifier])}, "
                             f"not {kernel!r}")
        if not C or any(not c > 0 for c in C) or (kernel == "rbf" and (not gamma or any(not g > 0 for g in gamma))):
            raise ValueError("C (and gamma for the rbf kernel) must be non-empty lists of numbers > 0")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be 'balanced' or null, not {class_weight!r}")
        self.functionals = Functionals(features)
        self.classifier, self.kernel, self.class_weight, self.max_iter = classifier, kernel, class_weight, max_iter
        self.grid = [{"C": float(c), **({"gamma": float(g)} if kernel == "rbf" else {})}
                     for c in C for g in (gamma if kernel == "rbf" else [None])]
        d = self.functionals.size
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("support", torch.zeros(1 if kernel == "rbf" else 0, d))  # rbf: the support vectors
        self.register_buffer("gamma", torch.tensor(1.0 / d))
        self.head = nn.Linear(1 if kernel == "rbf" else d, num_classes)
        self.requires_grad_(False)  # fitted by scikit-learn, never by gradients

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = wave if self.precomputed else self.functionals(wave, lengths)
        z = (feats.float() - self.mean) / self.scale
        if self.kernel == "rbf":
            z = torch.exp(-self.gamma * torch.cdist(z.double(), self.support.double()).square()).float()
        return self.head(z)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A fitted network's shapes come from its data (the number of support vectors): take the saved ones."""
        support = state_dict.get(prefix + "support")
        if support is not None and support.shape != self.support.shape:
            self.support = torch.empty_like(support)
            self.head = nn.Linear(support.shape[0], self.head.out_features).requires_grad_(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def estimator(self, setting: dict):
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.svm import SVC, LinearSVC

        if self.classifier == "logistic":
            return LogisticRegression(C=setting["C"], class_weight=self.class_weight, max_iter=self.max_iter)
        if self.kernel == "linear":
            return LinearSVC(C=setting["C"], class_weight=self.class_weight, max_iter=self.max_iter, dual="auto")
        gamma = setting["gamma"] / self.functionals.size
        return OneVsRestClassifier(SVC(C=setting["C"], gamma=gamma, class_weight=self.class_weight,
                                       max_iter=self.max_iter if self.max_iter else -1))

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            num_classes: int) -> list[dict]:
        """Every setting of the grid fitted on the training rows and scored on the validation rows; the best (by
        validation UA) copied into this network. Returns the grid with each setting's scores, the chosen marked."""
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x_train)
        z_train, z_val = scaler.transform(x_train), scaler.transform(x_val) if len(x_val) else x_val
        rows, best, best_model = [], None, None
        for setting in self.grid:
            model = self.estimator(setting).fit(z_train, y_train)
            row = {**setting, "train_acc": float(np.mean(model.predict(z_train) == y_train)),
                   "val_ua": float(balanced_accuracy_score(y_val, model.predict(z_val))) if len(y_val) else 0.0}
            rows.append(row)
            if best is None or row["val_ua"] > best["val_ua"]:
                best, best_model = row, model
            log.info("%s: train acc %.3f, val UA %.3f", setting, row["train_acc"], row["val_ua"])
        for row in rows:
            row["chosen"] = row is best
        self._copy(scaler, best_model, best, num_classes, classes=np.unique(y_train))
        return rows

    def _copy(self, scaler, model, setting: dict, num_classes: int, classes: np.ndarray) -> None:
        """The fitted scaler and classifier as this network's tensors (a class absent from training scores -inf)."""
        self.mean.copy_(torch.from_numpy(scaler.mean_))
        self.scale.copy_(torch.from_numpy(scaler.scale_))
        if self.kernel == "rbf":
            estimators = model.estimators_
            used = sorted(set().union(*(e.support_.tolist() for e in estimators)))
            where = {row: j for j, row in enumerate(used)}
            weight = np.zeros((len(classes), len(used)))
            for k, e in enumerate(estimators):
                weight[k, [where[r] for r in e.support_]] = e.dual_coef_[0]
            bias = np.array([e.intercept_[0] for e in estimators])
            self.support = torch.from_numpy(self._support_rows(model, used)).float()
            self.gamma.fill_(setting["gamma"] / self.functionals.size)
        else:
            weight, bias = model.coef_, model.intercept_
        full_w = np.zeros((num_classes, weight.shape[1]))
        full_b = np.full(num_classes, -1e4)  # never predicted: no training clip had it
        if len(classes) == 2 and weight.shape[0] == 1:  # sklearn's binary form: one score for classes[1]
            weight, bias = np.vstack([-weight, weight]) / 2, np.array([-bias[0], bias[0]]) / 2
        full_w[classes], full_b[classes] = weight, bias
        self.head = nn.Linear(full_w.shape[1], num_classes).requires_grad_(False)
        self.head.weight.copy_(torch.from_numpy(full_w))
        self.head.bias.copy_(torch.from_numpy(full_b))

    @staticmethod
    def _support_rows(model, used: list[int]) -> np.ndarray:
        """The standardised training rows that are a support vector of any class's SVM, in `used` order."""
        rows = {}
        for e in model.estimators_:
            for r, vector in zip(e.support_, e.support_vectors_):
                rows[int(r)] = vector
        return np.stack([rows[r] for r in used])
