"""The one LightningModule: any backbone that maps (wave, lengths) to logits trains through it."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from ser_bench import distributed
from ser_bench.errors import UserError
from ser_bench.models.base import AVERAGED_PREFIX
from ser_bench.models.layers import reverse_gradient


class SERModule(L.LightningModule):
    """Cross-entropy training with per-epoch train/val metrics and a test pass that keeps predictions.

    `history` holds one dict per epoch (train/loss, train/acc, val/loss, val/acc, val/ua, val/wa,
    gap/acc) for curves; `test_predictions` holds (row, label, probabilities) after `test`, and
    `val_predictions` the same for the validation clips at the best epoch so far (the first maximum of
    validation UA, the epoch whose checkpoint a run tests).

    `mixup` > 0 (Zhang et al., 2018): each training batch is blended with a shuffled copy of itself,
    weight lam ~ Beta(mixup, mixup), and the loss is blended alike. Models with a `frontend` blend its
    output (normalised log-mel, after SpecAugment); others blend their input. Train accuracy then
    counts the heavier of the two labels.

    `speaker_adversarial` > 0 (domain-adversarial training, Ganin & Lempitsky, 2015): a small speaker
    classifier (the adversary) learns the training speakers from the clip embedding that enters the
    network's `head`, through a gradient-reversal layer, so the network is pushed toward embeddings
    that do not tell the training speakers apart. The reversed gradient's weight ramps from 0 to
    `speaker_adversarial` over training (2 / (1 + exp(-10 p)) - 1). `speaker_of_row` gives each
    dataset row's training-speaker index. Only training speakers are used; the adversary is a
    training aid and plays no part in evaluation.

    `ema` > 0: validation and test use an exponential moving average of the network's weights (and
    buffers), updated after every optimizer step with this decay (torch's `AveragedModel`); the average
    spans about 1 / (1 - ema) steps. The averaged copy is part of the module, so the best checkpoint
    holds it and the test pass uses it. Train metrics come from the live weights.
    """

    def __init__(self, net: nn.Module, class_names: list[str], lr: float = 1e-3, weight_decay: float = 1e-4,
                 label_smoothing: float = 0.0, scheduler: str = "cosine", warmup_fraction: float = 0.1,
                 mixup: float = 0.0, speaker_adversarial: float = 0.0, ema: float = 0.0,
                 speaker_of_row: torch.Tensor | None = None):
        super().__init__()
        if scheduler not in ("cosine", "none"):
            raise ValueError(f"scheduler must be 'cosine' (linear warm-up, cosine decay) or 'none', not {scheduler!r}")
        if mixup < 0:
            raise ValueError(f"mixup must be >= 0 (the Beta distribution's alpha; 0 turns it off), not {mixup}")
        if speaker_adversarial < 0:
            raise ValueError(f"speaker_adversarial must be >= 0 (the reversed speaker gradient's final weight; "
                             f"0 turns it off), not {speaker_adversarial}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must be in [0, 1) (the moving average's decay per step; 0 turns it off), not {ema}")
        self.save_hyperparameters(ignore=["net", "speaker_of_row"])
        # Channels-last 2D weights: the convolutions of cnn2d and resnet2d run ~1.5x faster on CPU (oneDNN) with
        # the same outputs up to float rounding; a no-op for networks without 4D weights.
        self.net = net.to(memory_format=torch.channels_last)
        # Copied before the hooks below are registered on `net`, so the copy holds no reference to this module.
        self.ema_net = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(ema),
                                     use_buffers=True).requires_grad_(False) if ema > 0 else None
        # Checkpoints omit frozen parameters, which the model in memory already holds.
        self.strict_loading = all(p.requires_grad for p in net.parameters())
        n = len(class_names)
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(n, average="micro")
        self.val_wa = MulticlassAccuracy(n, average="micro")
        self.val_ua = MulticlassAccuracy(n, average="macro")
        self.test_wa = MulticlassAccuracy(n, average="micro")
        self.test_ua = MulticlassAccuracy(n, average="macro")
        self.test_f1 = MulticlassF1Score(n, average="macro")
        self.history: list[dict[str, float]] = []
        self.test_predictions: list[tuple[int, int, list[float]]] = []
        self.val_predictions: list[tuple[int, int, list[float]]] = []
        self._val_epoch: list[tuple[int, int, list[float]]] = []  # the running validation pass's predictions
        self._mix: tuple[torch.Tensor, float] | None = None  # (permutation, lam) during a mixup training step
        if mixup > 0 and getattr(net, "frontend", None) is not None:
            net.frontend.register_forward_hook(self._mix_frontend)
        self.adversary: nn.Module | None = None
        self._embedding: torch.Tensor | None = None  # the head's input in the last forward (with an adversary)
        if speaker_adversarial > 0:
            self._add_adversary(net, speaker_of_row)

    def _add_adversary(self, net: nn.Module, speaker_of_row: torch.Tensor | None) -> None:
        first = next((m for m in getattr(net, "head", nn.Identity()).modules() if isinstance(m, nn.Linear)), None)
        if first is None:
            raise ValueError("speaker_adversarial needs a network whose `head` (with a Linear layer) takes the "
                             "clip embedding")
        if speaker_of_row is None or int(speaker_of_row.max()) < 1:
            raise ValueError("speaker_adversarial needs the training clips' speakers, at least two of them")
        speakers = int(speaker_of_row.max()) + 1
        self.adversary = nn.Sequential(nn.Linear(first.in_features, 128), nn.ReLU(), nn.Linear(128, speakers))
        self.register_buffer("speaker_of_row", speaker_of_row.long(), persistent=False)
        self.train_speaker_acc = MulticlassAccuracy(speakers, average="micro")
        net.head.register_forward_pre_hook(self._keep_embedding)

    def _keep_embedding(self, module: nn.Module, args) -> None:
        self._embedding = args[0]

    def _mix_frontend(self, module: nn.Module, args, output):
        if self._mix is None:
            return output
        (perm, lam), (feats, frames) = self._mix, output
        return lam * feats + (1 - lam) * feats[perm], torch.maximum(frames, frames[perm])

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.ema_net is not None and not self.training:
            return self.ema_net.module(wave, lengths)
        return self.net(wave, lengths)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema_net is not None:
            self.ema_net.update_parameters(self.net)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Frozen parameters (a pretrained encoder) never change, so checkpoints leave them out: a frozen
        wav2vec2-base run keeps ~1 MB instead of ~380 MB. Loading is then non-strict (see __init__)."""
        frozen = {f"{prefix}{name}" for name, p in self.net.named_parameters() if not p.requires_grad
                  for prefix in ("net.", AVERAGED_PREFIX)}
        if frozen:
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def training_step(self, batch, batch_idx):
        wave, lengths, labels = batch["wave"], batch["lengths"], batch["label"]
        perm, lam = None, 1.0
        if self.hparams.mixup:
            alpha = self.hparams.mixup
            lam = float(torch.distributions.Beta(alpha, alpha).sample())
            perm = torch.randperm(len(labels), device=labels.device)
            if getattr(self.net, "frontend", None) is None:
                wave, lengths = lam * wave + (1 - lam) * wave[perm], torch.maximum(lengths, lengths[perm])
            self._mix = (perm, lam)
        try:
            logits = self(wave, lengths)
        finally:
            self._mix = None
        loss = _cross_entropy(logits, labels, perm, lam, self.hparams.label_smoothing)
        self.train_loss.update(loss.detach(), weight=len(logits))  # the emotion loss: comparable with val/loss
        if self.adversary is not None:
            loss = loss + self._speaker_loss(batch["row"], perm, lam)
        self.train_acc.update(logits.detach(), labels if lam >= 0.5 else labels[perm])
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return loss

    def _speaker_loss(self, rows: torch.Tensor, perm: torch.Tensor | None, lam: float) -> torch.Tensor:
        """The adversary's cross-entropy on the batch's training speakers; the network below the head gets
        its gradient reversed and weighted by the ramped `speaker_adversarial`."""
        speakers = self.speaker_of_row[rows]
        logits = self.adversary(reverse_gradient(self._embedding, self._adversary_scale()))
        self._embedding = None
        self.train_speaker_acc.update(logits.detach(), speakers if lam >= 0.5 else speakers[perm])
        return _cross_entropy(logits, speakers, perm, lam)

    def _adversary_scale(self) -> float:
        """The reversed gradient's weight: from 0 at the first step to `speaker_adversarial` at the last."""
        progress = min(1.0, self.global_step / max(1, self.trainer.estimated_stepping_batches))
        return self.hparams.speaker_adversarial * (2 / (1 + math.exp(-10 * progress)) - 1)

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()
        self.train_acc.reset()
        if self.adversary is not None:
            self.train_speaker_acc.reset()

    def validation_step(self, batch, batch_idx):
        logits = self(batch["wave"], batch["lengths"])
        self.val_loss.update(F.cross_entropy(logits, batch["label"]), weight=len(logits))
        self.val_wa.update(logits, batch["label"])
        self.val_ua.update(logits, batch["label"])
        self._val_epoch.extend(_clip_probabilities(batch, logits))

    def on_validation_epoch_start(self) -> None:
        self._val_epoch = []

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training batch, so the train metrics are complete here. Under DDP
        # the metrics' compute() adds up every rank's counts, and each rank's clips are gathered here.
        self._val_epoch = distributed.gather(self._val_epoch)
        epoch = {"val/loss": self.val_loss.compute().item(), "val/acc": self.val_wa.compute().item(),
                 "val/ua": self.val_ua.compute().item()}
        epoch["val/wa"] = epoch["val/acc"]
        for metric in (self.val_loss, self.val_wa, self.val_ua):
            metric.reset()
        if self.train_acc.update_count > 0 and not self.trainer.sanity_checking:
            epoch["train/loss"] = self.train_loss.compute().item()
            _check_finite(epoch, self.current_epoch)
            epoch["train/acc"] = self.train_acc.compute().item()
            epoch["gap/acc"] = epoch["train/acc"] - epoch["val/acc"]
            if self.adversary is not None:  # how well the adversary still tells the training speakers apart
                epoch["train/speaker_acc"] = self.train_speaker_acc.compute().item()
            if all(epoch["val/ua"] > h["val/ua"] for h in self.history):  # a new best: the checkpoint's epoch
                self.val_predictions = self._val_epoch
            self.history.append({"epoch": self.current_epoch, **epoch})
        to_loggers = bool(self.trainer.loggers)  # the Lightning loggers of conf/logger/, where there are any
        for name, value in epoch.items():
            self.log(name, value, prog_bar=name in ("val/ua", "train/acc"), logger=to_loggers)

    def test_step(self, batch, batch_idx):
        logits = self(batch["wave"], batch["lengths"])
        labels = batch["label"]
        self.test_wa.update(logits, labels)
        self.test_ua.update(logits, labels)
        self.test_f1.update(logits, labels)
        self.test_predictions.extend(_clip_probabilities(batch, logits))

    def on_test_epoch_start(self) -> None:
        self.test_predictions = []

    def on_test_epoch_end(self) -> None:
        self.test_predictions = distributed.gather(self.test_predictions)
        self.log_dict({"test/ua": self.test_ua.compute(), "test/wa": self.test_wa.compute(),
                       "test/macro_f1": self.test_f1.compute()}, logger=False)
        for metric in (self.test_ua, self.test_wa, self.test_f1):
            metric.reset()

    def configure_optimizers(self):
        """AdamW; a backbone with `param_groups(lr)` (e.g. an encoder at a smaller rate) sets its own groups.
        The schedule scales every group alike: linear warm-up from 1%, then cosine decay to 1%."""
        lr = self.hparams.lr
        if hasattr(self.net, "param_groups"):
            groups = self.net.param_groups(lr)
            if self.adversary is not None:
                groups.append({"params": list(self.adversary.parameters())})
        else:
            groups = [{"params": [p for p in self.parameters() if p.requires_grad]}]  # the adversary's too
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.scheduler == "none":
            return opt
        total = max(2, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, max(1, round(self.hparams.warmup_fraction * total)))

        def factor(step: int) -> float:
            if step < warmup:
                return 0.01 + 0.99 * step / warmup
            progress = min(1.0, (step - warmup) / (total - warmup))
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class NonFiniteLoss(UserError):
    """Training diverged: a run that goes on from here would be FINISHED with NaN weights."""


def _check_finite(epoch: dict[str, float], index: int) -> None:
    bad = [k for k in ("train/loss", "val/loss") if k in epoch and not math.isfinite(epoch[k])]
    if bad:
        raise NonFiniteLoss(f"{' and '.join(f'{k} = {epoch[k]}' for k in bad)} at epoch {index}: training diverged; "
                            f"lower model.optim.lr, or check the training audio")


def _clip_probabilities(batch: dict, logits: torch.Tensor) -> list[tuple[int, int, list[float]]]:
    probs = logits.float().softmax(-1).cpu()
    return list(zip(batch["row"].tolist(), batch["label"].tolist(), probs.tolist()))


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, perm: torch.Tensor | None, lam: float,
                   smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy; under mixup (`perm`, `lam`) the blend of the two targets' losses."""
    loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    if perm is None:
        return loss
    return lam * loss + (1 - lam) * F.cross_entropy(logits, targets[perm], label_smoothing=smoothing)
