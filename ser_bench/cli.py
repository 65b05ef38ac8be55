"""What `python -m ser_bench` prints and how it ends: one run, or one job of a sweep."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from ser_bench import sweep as sweeps
from ser_bench.errors import UserError
from ser_bench.tracking import finished_run, tracking_summary

log = logging.getLogger(__name__)


def single(cfg: DictConfig) -> float:
    """A single run: a user's mistake ends in one `error:` line and exit status 2. Returns the objective (below)."""
    from ser_bench.train import run  # here, not at the top: a skipped sweep job never imports the training stack

    try:
        result = run(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print_result(cfg, result)
    return objective(result["metrics"])


def objective(metrics: dict) -> float:
    """What a job returns to Hydra, and so what a sweeper (hydra/sweeper=optuna) optimises: the best validation UA,
    the metric every choice is made on; never a test metric."""
    return float(metrics["best/val_ua"])


def sweep_job(cfg: DictConfig, sweep: dict) -> float | None:
    """One job of a sweep: skipped when this configuration already FINISHED (`resume=true`); a crash is
    recorded (FAILED in MLflow where the run had started, and in the job's result.json) without
    stopping the other jobs; the sweep's exit status reports it at the end. Returns the objective, None where the
    job failed (Optuna records the trial as FAIL)."""
    label = sweeps.job_label(sweep)
    if cfg.resume:
        prior = finished_run(cfg)
        if prior is not None:
            ua = prior.data.metrics.get("test/ua")
            print(f"skip {label}: already FINISHED as run {prior.info.run_id} "
                  f"(test UA {ua:.3f}, commit {prior.data.tags.get('git_commit', '?')[:12]})", flush=True)
            sweeps.write_result(cfg, sweep, "skipped", run_id=prior.info.run_id)
            return objective(prior.data.metrics)
    from ser_bench.train import run

    try:
        result = run(cfg, sweep)
    except Exception as err:  # noqa: BLE001 - one job's crash must not end the sweep
        if isinstance(err, UserError):
            print(f"error: {label}: {err}", file=sys.stderr, flush=True)
        else:
            log.exception("%s crashed", label)
        sweeps.write_result(cfg, sweep, "failed", error=f"{type(err).__name__}: {err}"[:500])
        return None
    sweeps.write_result(cfg, sweep, "finished", run_id=result["run_id"])
    print_result(cfg, result)
    return objective(result["metrics"])


def print_result(cfg: DictConfig, result: dict) -> None:
    m, s = result["metrics"], result["split"]
    leaky = f"  [LEAKY {s['protocol']} split: not a speaker-independent result]" if s["leaky"] else ""
    speakers = s["test_actors"] if len(s["test_actors"]) <= 8 else [f"{len(s['test_actors'])} speakers"]
    print(f"\ntest  UA {m['test/ua']:.3f}  WA {m['test/wa']:.3f}  macro-F1 {m['test/macro_f1']:.3f}"
          f"   ({s['corpus']}, labels {cfg.labels}, {cfg.model.name}, augment {cfg.augment.name}, "
          f"split {s['protocol']} fold "
          f"{s['fold']}, test actors {' '.join(map(str, speakers))}; best epoch {int(m['best/epoch'])}, "
          f"gap {m['best/gap_acc']:+.3f}){leaky}")
    print(f"MLflow run {result['run_id']} in experiment '{result['experiment']}': "
          f"{tracking_summary(result['tracking_uri'])}", flush=True)
