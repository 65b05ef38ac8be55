"""One run: corpus -> split -> cached audio -> model -> fit -> test the best-validation checkpoint -> MLflow."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import confusion_matrix

from ser_bench import classic_fit, distributed, settings, tracking
from ser_bench.augment.offline import offline_copies, offline_key
from ser_bench.classic_fit import Fitted
from ser_bench.data import labels
from ser_bench.data.audio import SAMPLE_RATE
from ser_bench.data.cache import cache_key, load_waveforms
from ser_bench.data.datamodule import SERDataModule
from ser_bench.data.manifest import Utterance, label_ids
from ser_bench.errors import UserError
from ser_bench.inference import bundle
from ser_bench.models import base, init
from ser_bench.models.features import cached_functionals, cached_layer_features, cached_log_mel, speaker_normalised
from ser_bench.models.frontends import LogMel
from ser_bench.models.module import SERModule

log = logging.getLogger(__name__)


def build(node: DictConfig, what: str, **kwargs):
    """Hydra's instantiate, with a user's mistake (bad path, bad option value) kept as one clear line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise UserError(f"bad {what} settings: {cause}") from None
        raise


def build_corpus(node: DictConfig, key: str = "data") -> list[Utterance]:
    """The manifest of `data` (or `eval_data`); a missing path is one line naming the setting."""
    for name, part in [(key, node), *((f"{key}.parts.{k}", v) for k, v in node.get("parts", {}).items())]:
        for field in ("metadata", "root"):
            if field in part.keys() and OmegaConf.is_missing(part, field):
                raise UserError(f"{name}={part.get('corpus') or part._target_.rsplit('.', 1)[-1]} needs "
                                f"{name}.{field}=PATH (the folder that holds the "
                                f"{'corpus' if field == 'root' else 'EmoBox metadata'})")
    return build(node, key)


def corpus_and_labels(cfg: DictConfig) -> tuple[list[Utterance], list[str], dict[str, int]]:
    """Training corpora (plus the test corpus of a cross-corpus run), mapped to the label set.

    Returns the manifest, the class names and the clips dropped per corpus:emotion.
    """
    manifest = build_corpus(cfg.data)
    cross = cfg.split._target_.endswith(".cross")
    if cfg.get("eval_data") is not None and not cross:
        raise UserError("eval_data is for cross-corpus runs: add split=cross (or drop eval_data)")
    if cross:
        if cfg.get("eval_data") is None:
            raise UserError("split=cross needs the corpus to test on: eval_data=NAME eval_data.root=PATH")
        test = build_corpus(cfg.eval_data, "eval_data")
        test_corpora = {u.corpus for u in test}
        if test_corpora & {u.corpus for u in manifest}:
            raise UserError(f"split=cross tests on {', '.join(sorted(test_corpora))}, which is also a training corpus; "
                            f"to test within one corpus use split=emobox or loso")
        manifest = manifest + test
    manifest, class_names, dropped = labels.apply(manifest, str(cfg.labels))
    if cross and cfg.labels == "native":
        train_set = set(labels.native_classes([u for u in manifest if u.corpus not in test_corpora]))
        test_set = set(labels.native_classes([u for u in manifest if u.corpus in test_corpora]))
        if train_set != test_set:
            raise UserError(f"labels=native: the corpora's emotions differ (training only: "
                            f"{', '.join(sorted(train_set - test_set)) or '-'}; test only: "
                            f"{', '.join(sorted(test_set - train_set)) or '-'}); use labels=ekman7 or labels=four")
    return manifest, class_names, dict(dropped)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning() -> None:
    """Lightning logs through the application's handlers once, without advertising."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.addFilter(_DropTips())
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    # In-memory clips on a few cores: worker processes cost more than they save, by choice.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    # Under DDP the epoch's values are torchmetrics' of every rank's clips already (ser_bench.distributed).
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*when logging on epoch level in distributed.*")
    # A frozen encoder stays in eval mode on purpose (ser_bench.models.ssl).
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")


def run(cfg: DictConfig, sweep: dict | None = None) -> dict:
    """Train and evaluate one configuration; returns test metrics and where the run was logged.

    `sweep` (from ser_bench.sweep) tags the run with its sweep and nests it under the sweep's parent run.
    """
    settings.check(cfg)  # before anything is decoded, cached or logged
    ranks = distributed.processes(cfg.trainer)
    if ranks:  # DDP: every rank runs this function on the same config; rank 0 logs the run
        return distributed.launch(cfg, sweep, ranks)
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    manifest, class_names, dropped = corpus_and_labels(cfg)
    split = build(cfg.split, "split")(manifest)
    split.name_corpora(manifest)
    log.info("split %s fold %d: train actors %s, val actors %s, test actors %s", split.protocol, split.fold,
             split.train_actors, split.val_actors, split.test_actors)
    if split.leaky:
        log.warning("split=random is utterance-level and LEAKY (the same actors train and test): "
                    "use it only to measure leakage, never as a result")
    augmentation = build(cfg.augment, "augment")
    log.info("%s", augmentation)
    if OmegaConf.select(cfg, "model.net.frontend.norm") == "speaker" and (
            not cfg.get("cache_log_mel", True) or augmentation.online):
        # Checked before any audio is decoded or copied: the statistics come from the cached log-mel.
        raise UserError("model.net.frontend.norm=speaker works on the cached log-mel: keep cache_log_mel=true "
                        "and use offline (or no) augmentation")
    paths = [u.path for u in manifest]
    clips_key = cache_key(paths, SAMPLE_RATE)
    waves = load_waveforms(paths, cfg.cache_dir, key=clips_key)
    copies = None
    if augmentation.offline:
        copies = offline_copies(waves, clips_key, augmentation, cfg.cache_dir)
        clips_key += "+" + offline_key(clips_key, augmentation)
    datamodule = SERDataModule(waves, label_ids(manifest, tuple(class_names)), split, **cfg.loader, copies=copies,
                               online=augmentation if augmentation.online else None, seed=cfg.seed)
    net = base.check(build(cfg.model.net, "model.net", num_classes=len(class_names)), len(class_names))
    if cfg.model.get("init_from"):
        if base.is_fitted(net):
            raise UserError(f"model.init_from: model={cfg.model.name} is fitted from its features, not started from "
                            f"weights; drop model.init_from")
        init.load_into(net, init.resolve(str(cfg.model.init_from), cfg.tracking.uri))
    augmentation.attach(net)
    frontend = getattr(net, "frontend", None)
    if cfg.get("cache_log_mel", True) and isinstance(frontend, LogMel) and not augmentation.online:
        max_samples = datamodule.max_samples
        max_frames = int(frontend.frame_lengths(torch.tensor(max_samples))) if max_samples else None
        table = cached_log_mel(frontend, datamodule.waves, clips_key, cfg.cache_dir)
        if frontend.norm == "speaker":
            log.warning("model.net.frontend.norm=speaker: TRANSDUCTIVE, normalised with every speaker's audio, "
                        "the test actors' included (no labels); never a speaker-independent result")
            table = speaker_normalised(table, [u.speaker for u in manifest])
        datamodule.use_features(table, max_frames)
        frontend.precomputed = True
    if cfg.model.get("cache_features") and getattr(net, "mode", None) == "frozen":
        if augmentation.online:
            log.info("frozen features not cached (online augmentation changes the clips every epoch)")
        else:
            datamodule.use_features(cached_layer_features(net, datamodule.waves, clips_key, datamodule.max_samples,
                                                          cfg.cache_dir))
            net.precomputed = True
            if net.standardize:
                train_rows = np.stack([datamodule.waves[r] for r in datamodule.train_rows])
                net.fit_standardizer(torch.from_numpy(train_rows).view(len(train_rows), len(net.layer_weights), -1))
    if getattr(net, "standardize", False) and not getattr(net, "precomputed", False):
        raise UserError("model.net.standardize=true needs the frozen features cached (model.cache_features=true, "
                        "no online augmentation): its statistics are the training clips' cached features")
    out = Path(cfg.paths.output_dir)
    if base.is_fitted(net):  # the classic baselines: fitted by scikit-learn on cached functionals (models.classic)
        if distributed.is_rank():
            raise UserError(f"model={cfg.model.name} is fitted by scikit-learn in one process: DDP is for gradient "
                            f"training; drop trainer.strategy and use trainer.devices=1")
        if augmentation.online:
            raise UserError(f"model={cfg.model.name} is fitted on features computed once per clip: use offline "
                            f"augmentation (augment.mode=offline) or none")
        datamodule.use_features(cached_functionals(net.functionals, datamodule.waves, clips_key,
                                                   datamodule.max_samples, cfg.cache_dir))
        net.precomputed = True

        def fit() -> Fitted:
            return classic_fit.fit(net, datamodule, class_names, out)
    else:
        speakers = training_speakers(manifest, split, len(datamodule.labels)) if cfg.model.optim.get(
            "speaker_adversarial") else None
        try:
            module = SERModule(net, class_names, **cfg.model.optim, speaker_of_row=speakers)
        except ValueError as err:
            raise UserError(f"bad model.optim settings: {err}") from None
        checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/ua", mode="max",
                                     save_top_k=1, save_weights_only=True)
        callbacks = [checkpoint, tracking.epoch_logger()]
        if cfg.early_stopping.patience:
            callbacks.append(EarlyStopping(monitor="val/ua", mode="max", patience=cfg.early_stopping.patience))
        warn_slow_precision(str(cfg.trainer.get("precision", "32-true")), str(cfg.trainer.get("accelerator", "auto")))
        trainer = make_trainer(cfg, callbacks, out)

        def fit() -> Fitted:
            return fit_lightning(trainer, module, datamodule, checkpoint)

    if not distributed.is_lead():  # a DDP rank other than 0: its share of the work, no run, no files
        fit()
        return {}
    provenance = net.provenance() if base.is_encoder(net) else {}
    with tracking.start_run(cfg, split, sweep, dropped, manifest, extra_tags=provenance) as mlrun:
        fitted = fit()
        history = fitted.history
        best_idx = int(np.argmax([h["val/ua"] for h in history]))  # first maximum, as the checkpoint keeps it
        metrics = {**fitted.test_metrics, "best/epoch": history[best_idx]["epoch"],
                   "best/val_ua": history[best_idx]["val/ua"], "best/gap_acc": history[best_idx]["gap/acc"],
                   "epochs": len(history), "params": fitted.params}
        predictions, confusion = test_report(fitted.test_predictions, manifest, class_names)
        # The validation clips at the best epoch (the tested checkpoint's): what ensembles are chosen on.
        val_predictions = test_report(fitted.val_predictions, manifest, class_names)[0] if fitted.val_predictions \
            else []
        tracking.log_results(metrics, history, history[best_idx]["epoch"], confusion, class_names, predictions,
                             fitted.checkpoint if cfg.tracking.log_checkpoint else None, val_predictions)
        if cfg.tracking.get("log_model", True):
            metrics.update(log_model(cfg, fitted, class_names, val_predictions, predictions, mlrun.info.run_id))
    return {"metrics": metrics, "run_id": mlrun.info.run_id, "split": split.describe(),
            "tracking_uri": cfg.tracking.uri, "experiment": cfg.tracking.experiment}


def fit_lightning(trainer: L.Trainer, module: SERModule, datamodule: SERDataModule,
                  checkpoint: ModelCheckpoint) -> Fitted:
    """Gradient training: fit, then test the best-validation checkpoint."""
    trainer.fit(module, datamodule=datamodule)
    best = checkpoint.best_model_path
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    tested = module.ema_net.module if module.ema_net is not None else module.net  # the network as tested
    return Fitted(module.history, module.test_predictions, module.val_predictions, metrics, best or None, tested,
                  sum(p.numel() for p in module.net.parameters()), bundle.referenced_parameters(module.net))


def make_trainer(cfg: DictConfig, callbacks: list, out: Path) -> L.Trainer:
    """Lightning's Trainer, made before the MLflow run opens: a flag it refuses is one line, with no run left."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    added = {"logger": [], "callbacks": []}
    for group, objects in added.items():  # conf/logger/, conf/callbacks/: each entry one object by _target_
        for name, node in (cfg.get(group) or {}).items():
            try:
                objects.append(instantiate(node))
            except Exception as err:  # noqa: BLE001 - a missing package, a bad argument: one line naming it
                cause = err.__cause__ or err
                raise UserError(f"{group}.{name}: cannot make {OmegaConf.select(node, '_target_')} "
                                f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})") \
                    from None
    try:
        # The data module gives each DDP rank its part (Lightning's samplers would repeat evaluation clips).
        return L.Trainer(**{"default_root_dir": out, **cfg.trainer}, callbacks=callbacks + added["callbacks"],
                         logger=added["logger"] or False, use_distributed_sampler=False)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as err:
        raise UserError(f"bad trainer settings: {str(err).splitlines()[0]}") from None


def log_model(cfg: DictConfig, fitted: Fitted, class_names: list[str], val_rows: list[dict],
              test_rows: list[dict], run_id: str) -> dict[str, float]:
    """The run's MLflow model: the network as tested (its moving average where there is one), calibrated on the
    validation rows; returns the calibration metrics it logged."""
    from ser_bench.inference import mlflow_model

    return mlflow_model.log_run_model(
        fitted.tested, OmegaConf.to_container(cfg.model.net, resolve=True), class_names,
        window_seconds=cfg.loader.max_seconds, precision=str(cfg.trainer.get("precision", "32-true")),
        val_rows=val_rows, test_rows=test_rows, omit=fitted.omit,
        source=mlflow_model.source(mlflow.get_run(run_id)))


def cpu_has_bf16() -> bool:
    """Whether oneDNN finds native bfloat16 units (AVX-512 BF16 or AMX) on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warn_slow_precision(precision: str, accelerator: str) -> None:
    """bf16 autocast on a CPU without bfloat16 units is emulated: resnet2d's training step took 8x as long as in
    float32 on an AVX2-only CPU (experiments/benchmarks.md). Said once per run, before training starts."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if precision.startswith("bf16") and on_cpu and not cpu_has_bf16():
        log.warning("trainer.precision=%s on a CPU without bfloat16 units (no AVX-512 BF16 or AMX): several times "
                    "slower than float32 here; trainer.precision=32-true trains faster (a different config hash, and "
                    "slightly different numbers)", precision)


def training_speakers(manifest: list[Utterance], split, rows: int) -> torch.Tensor:
    """Each of the data module's `rows` (clips, then their offline copies) as an index into the sorted training
    speakers (a copy takes its source clip's); -1 for clips of validation and test speakers."""
    index = {speaker: i for i, speaker in enumerate(sorted({manifest[r].speaker for r in split.train}))}
    return torch.tensor([index.get(manifest[r % len(manifest)].speaker, -1) for r in range(rows)])


def test_report(test_predictions: list[tuple[int, int, list[float]]], manifest: list[Utterance],
                class_names: list[str]) -> tuple[list[dict], np.ndarray]:
    """Per-utterance prediction rows (with class probabilities) and the confusion matrix (of any clips:
    the test clips, or the validation clips)."""
    rows = [manifest[r] for r, _, _ in test_predictions]
    y_true = np.array([label for _, label, _ in test_predictions])
    probs = np.array([p for _, _, p in test_predictions])
    y_pred = probs.argmax(1)
    predictions = [{"utt_id": u.utt_id, "actor": u.actor, "true": class_names[t], "pred": class_names[p],
                    **{f"p_{c}": round(float(q), 5) for c, q in zip(class_names, pr)}}
                   for u, t, p, pr in zip(rows, y_true, y_pred, probs)]
    return predictions, confusion_matrix(y_true, y_pred, labels=range(len(class_names)))
