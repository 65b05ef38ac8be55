"""Sweeps (`python -m ser_bench -m ...`): one parent MLflow run per sweep, jobs nested under it,
configurations that already FINISHED skipped, a crashing job recorded and the others going on.

Hydra calls `SweepCallback` in the launching process before any job starts and after all have
ended. It creates the store and experiment once (parallel jobs must not race to create them),
opens the parent run and writes `sweep.json` into the sweep folder; every job reads that file and
writes its own `result.json` beside its outputs. Files in the sweep folder are the only channel,
so the same code works with the basic, joblib and submitit (SLURM) launchers alike.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)

SWEEP_FILE, RESULT_FILE = "sweep.json", "result.json"
CURRENT: dict = {}  # the sweep this (launching) process opened, for closing it after Ctrl-C


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from mlflow.tracking import MlflowClient

        from ser_bench.runs import close_stale, process_tags
        from ser_bench.tracking import ensure_experiment, git_commit

        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        uri = config.tracking.uri
        experiment_id = ensure_experiment(uri, config.tracking.experiment)
        stale = close_stale(MlflowClient(uri), [experiment_id])
        if stale:
            print(f"closed {len(stale)} runs left RUNNING by processes that are gone (now KILLED): {' '.join(stale)}",
                  flush=True)
        # The launch tag of the sweep's folder (ser_bench.__main__), so id and folder name each other.
        sweep_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.environ.get('SER_BENCH_LAUNCH') or secrets.token_hex(3)}"
        overrides = " ".join(config.hydra.overrides.task)
        parent = MlflowClient(uri).create_run(experiment_id, run_name=f"sweep {sweep_id}", tags={
            "sweep_id": sweep_id, "kind": "sweep", "sweep.command": f"python -m ser_bench -m {overrides}".strip(),
            "sweep.dir": str(sweep_dir.resolve()), "git_commit": git_commit(), **process_tags(),
            **sweeper_tags(config.hydra.sweeper)})
        info = {"sweep_id": sweep_id, "parent_run_id": parent.info.run_id, "experiment_id": experiment_id,
                "tracking_uri": uri, "sweep_dir": str(sweep_dir.resolve()),
                "swept": swept_keys(list(config.hydra.overrides.task))
                + [str(k) for k in config.hydra.sweeper.get("params") or {}]}
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        CURRENT.clear()
        CURRENT.update(info)
        print(f"sweep {sweep_id}: parent MLflow run {parent.info.run_id} in '{config.tracking.experiment}', "
              f"outputs in {sweep_dir}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        info_file = sweep_dir / SWEEP_FILE
        if not info_file.exists():
            return
        info = json.loads(info_file.read_text())
        results = read_results(sweep_dir)
        counts = Counter(r["status"] for r in results)
        summary = _summary(info, results)
        nothing_new = not counts["finished"] and not counts["failed"] and set(config.hydra.callbacks) == {"sweep"}
        if nothing_new:  # a re-run of a finished sweep: its runs have their parent already
            from mlflow.tracking import MlflowClient

            MlflowClient(info["tracking_uri"]).delete_run(info["parent_run_id"])
        else:
            _finish_parent(info, results, counts, summary)
        print(f"sweep {info['sweep_id']}: {counts['finished']} finished, {counts['skipped']} skipped "
              f"(already FINISHED), {counts['failed']} failed"
              f"{'; nothing new, so no new parent run is kept' if nothing_new else ''}", flush=True)
        if summary:
            from ser_bench.sweep_summary import table

            print(table(summary))
            print(f"full report: python -m ser_bench.report --tracking-uri {info['tracking_uri']} --experiment "
                  f"{config.tracking.experiment}", flush=True)
        for r in results:
            if r["status"] == "failed":
                print(f"  failed: {r['job']}: {r['error']}", file=sys.stderr)
        if counts["failed"]:
            sys.exit(1)  # a SystemExit passes Hydra's callback guard: the sweep's exit status says it failed


def sweeper_tags(sweeper: DictConfig) -> dict[str, str]:
    """The sweeper, and for an Optuna search its study (name and store), so a parent run finds its study."""
    tags = {"sweep.sweeper": str(sweeper.get("_target_", "")).rsplit(".", 1)[-1]}
    if "study_name" in sweeper:
        tags.update({"optuna.study": str(sweeper.study_name), "optuna.storage": str(sweeper.storage),
                     "optuna.direction": str(sweeper.direction)})
    return tags


def interrupted() -> list[str]:
    """After Ctrl-C in the launching process: the sweep's runs whose process is gone (joblib's workers are being
    stopped; a few seconds' grace) and its parent run end KILLED. Returns the closed job runs."""
    if not CURRENT:
        return []
    from mlflow.tracking import MlflowClient

    from ser_bench.runs import close_stale

    client = MlflowClient(CURRENT["tracking_uri"])
    experiments = sorted({CURRENT["experiment_id"], *_job_experiments(client)})
    closed = close_stale(client, experiments, CURRENT["sweep_id"], wait=15.0)
    if client.get_run(CURRENT["parent_run_id"]).info.status == "RUNNING":  # not closed by the sweep's own end
        client.set_tag(CURRENT["parent_run_id"], "error", "interrupted")
        client.set_terminated(CURRENT["parent_run_id"], "KILLED")
    return closed


def _job_experiments(client) -> list[str]:
    """Experiments the sweep's jobs logged to (a member's recipe may name its own)."""
    ids = []
    for r in read_results(Path(CURRENT.get("sweep_dir", "."))):
        exp = client.get_experiment_by_name(r.get("experiment", ""))
        if exp is not None:
            ids.append(exp.experiment_id)
    return ids


def _summary(info: dict, results: list[dict]) -> list[dict]:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from ser_bench.sweep_summary import rows

    try:
        return rows(MlflowClient(info["tracking_uri"]), results)
    except MlflowException as err:  # a run that cannot be read leaves the table out, not the sweep's end
        log.warning("no sweep summary: %s", str(err).splitlines()[0])
        return []


def _finish_parent(info: dict, results: list[dict], counts: Counter, summary: list[dict]) -> None:
    from mlflow.tracking import MlflowClient

    from ser_bench import plots
    from ser_bench.sweep_summary import parent_metrics

    client = MlflowClient(info["tracking_uri"])
    parent = info["parent_run_id"]
    for status in ("finished", "skipped", "failed"):
        client.set_tag(parent, f"jobs.{status}", str(counts[status]))
    if summary:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client.log_batch(parent, metrics=[Metric(k, float(v), now, 0) for k, v in parent_metrics(summary).items()])
        client.set_tag(parent, "chosen.setting", summary[0]["setting"])
    curves = _fold_mean_curves(client, [r for r in results if r["status"] in ("finished", "skipped")])
    if curves:
        fig = plots.sweep_curves(curves)
        client.log_figure(parent, fig, "overfitting.png", save_kwargs={"bbox_inches": "tight", "dpi": 110})
        plots.close(fig)
    client.set_terminated(parent, "FAILED" if counts["failed"] else "FINISHED")


def _fold_mean_curves(client, results: list[dict]) -> dict:
    """{model: {augment: {"train/acc": {epoch: mean}, "val/acc": {epoch: mean}, "runs": n}}}: per-epoch
    means over the runs (folds, seeds) of each setting; an epoch's mean covers the runs that reached it."""
    from ser_bench.plots import epoch_means
    from ser_bench.report.collect import curves

    histories: dict = {}
    for r in results:
        histories.setdefault(r["model"], {}).setdefault(r["augment"], []).append(curves(client, r["run_id"]))
    return {model: {aug: {"runs": len(runs), **{key: epoch_means([h[key] for h in runs])
                                                 for key in ("train/acc", "val/acc")}}
                    for aug, runs in augs.items()} for model, augs in histories.items()}


def read_results(sweep_dir: Path) -> list[dict]:
    """Every job's result.json in the sweep folder."""
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.rglob(RESULT_FILE))]


def sweep_info() -> dict | None:
    """The running sweep's `sweep.json` inside a multirun job; None in a single run."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return None
    if hc.mode != RunMode.MULTIRUN:
        return None
    info_file = Path(hc.sweep.dir) / SWEEP_FILE
    if not info_file.exists():
        log.warning("no %s in %s: this job runs without a sweep id or parent run", SWEEP_FILE, hc.sweep.dir)
        return {}
    return json.loads(info_file.read_text())


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a sweep command varies (`model=cnn1d,cnn2d`, `split.fold='range(6)'`, ...)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.get_key_element() for o in parsed if o.is_sweep_override()]


def own_overrides(sweep: dict | None = None) -> list[str]:
    """The swept settings of this job, as overrides."""
    hc = HydraConfig.get()
    swept = (sweep or {}).get("swept")
    return [o for o in hc.overrides.task if swept is None or o.split("=", 1)[0] in swept]


def job_label(sweep: dict | None = None) -> str:
    """`job N (the swept settings of this job)`."""
    own = own_overrides(sweep)
    return f"job {HydraConfig.get().job.num} ({' '.join(o.lstrip('+') for o in own) or 'defaults'})"


def write_result(cfg: DictConfig, sweep: dict, status: str, **fields) -> None:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    from ser_bench.sweep_summary import setting_of

    record = {"job": job_label(sweep), "status": status, "setting": setting_of(own_overrides(sweep)),
              "model": str(cfg.model.name), "augment": str(cfg.augment.name),
              "experiment": str(cfg.tracking.experiment), **fields}
    (out / RESULT_FILE).write_text(json.dumps(record, indent=1))
