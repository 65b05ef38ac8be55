"""`python -m ser_bench -m ensemble=NAME`: one command that trains an ensemble's members and scores it.

An ensemble config (conf/ensemble/) sets the sweep, `hydra.sweeper.params`: its members (conf/member/, each a
named experiment with a seed) times the folds, and adds `EnsembleCallback`. When every job has ended, the
callback scores the sweep's runs as one ensemble, as `python -m ser_bench.report --ensemble` does: per fold,
each setting's seeds averaged, then the settings with equal weight, each run at its best-validation checkpoint.
It prints the table, writes `ensemble.md` into the sweep folder and logs both on the sweep's parent MLflow run.
It chooses nothing: the ensemble's validation UA stands beside its test UA, to compare ensembles on.
Members that already FINISHED (same config hash) are not trained again, so a stopped sweep resumes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ser_bench.errors import UserError
from ser_bench.report.ensemble import Ensemble
from ser_bench.report.stats import METRICS
from ser_bench.sweep import SWEEP_FILE, read_results

REPORT_FILE = "ensemble.md"


class EnsembleCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        # Hydra calls the end hooks in reverse order: this one runs before SweepCallback closes the parent run.
        from mlflow.tracking import MlflowClient

        sweep_dir = Path(config.hydra.sweep.dir)
        if not (sweep_dir / SWEEP_FILE).exists():
            return
        info = json.loads((sweep_dir / SWEEP_FILE).read_text())
        results = read_results(sweep_dir)
        if failed := sum(r["status"] == "failed" for r in results):
            print(f"ensemble not scored: {failed} of {len(results)} jobs failed (listed below); run the same "
                  f"command again to train what is missing", file=sys.stderr, flush=True)
            return
        client = MlflowClient(info["tracking_uri"])
        try:
            experiments = sorted({r.get("experiment", config.tracking.experiment) for r in results})
            ensemble = score_runs(client, experiments, {r["run_id"] for r in results})
        except UserError as err:
            print(f"ensemble not scored: {err}", file=sys.stderr, flush=True)
            return
        text = describe(ensemble)
        (sweep_dir / REPORT_FILE).write_text(text, encoding="utf-8")
        log_on_parent(client, info["parent_run_id"], ensemble, sweep_dir / REPORT_FILE)
        print(text, flush=True)


def score_runs(client, experiments: list[str], run_ids: set[str]) -> Ensemble:
    """The runs `run_ids` (logged in `experiments`) as one ensemble: each setting (the leaderboard's grouping over
    the whole experiments, so labels match the report's) with its seeds among these runs."""
    from ser_bench.report.collect import artifact, collect
    from ser_bench.report.ensemble import ensemble_of
    from ser_bench.report.stats import Group, build_groups

    groups = []
    for g in build_groups(collect(client, experiments).records):
        if mine := [r for r in g.records if r.run_id in run_ids]:
            groups.append(Group(g.corpus, g.split, g.model, g.augment, g.settings, mine, g.expected_folds))
    if not groups:
        raise UserError(f"none of the sweep's runs is a finished run in {', '.join(experiments)}")
    if len({(g.corpus, g.split) for g in groups}) > 1:
        raise UserError("the members ran on different corpora or split protocols: "
                        + "; ".join(f"{g.label}: {g.corpus} {g.split}" for g in groups))
    if len({tuple(g.folds) for g in groups}) > 1:
        raise UserError("the members ran on different folds: "
                        + "; ".join(f"{g.label}: {g.folds}" for g in groups))
    ensemble = ensemble_of(groups, lambda run_id, name: artifact(client, run_id, name))
    if ensemble is None:
        raise UserError("a member run lacks predictions.csv, or the members tested different clips")
    return ensemble


def minutes_per_fold(ensemble: Ensemble) -> float:
    """Training wall time per fold: the member runs' own minutes, added up, averaged over folds."""
    per_fold: dict[int, float] = {}
    for g, seeds in zip(ensemble.groups, ensemble.seeds):
        for r in g.records:
            if r.seed in seeds:
                per_fold[r.fold] = per_fold.get(r.fold, 0.0) + r.minutes
    return float(np.mean(list(per_fold.values())))


def describe(ensemble: Ensemble) -> str:
    """Markdown: the ensemble fold by fold, then its members alone."""
    from ser_bench.report.render import mean_std, num
    first = ensemble.groups[0]
    leaky = "  **LEAKY split: not a speaker-independent result.**" if first.leaky else ""
    folds = sorted(ensemble.members)
    lines = [f"# Ensemble: {ensemble.label}", "",
             f"{first.corpus}, split {first.split}, folds {len(folds)}/{first.expected_folds}; "
             f"{ensemble.trainings} trainings per fold ({' & '.join(','.join(s) for s in ensemble.seeds)} seeds), "
             f"{minutes_per_fold(ensemble):.1f} min of training per fold (the member runs' wall times added up)."
             f"{leaky}", "",
             "Per fold, each setting's seeds averaged, then the settings with equal weight (class probabilities, "
             "clip by clip, at each run's best-validation checkpoint). val UA: the ensemble on the validation "
             "actors, the figure to compare ensembles on; test actors are scored once.", "",
             "| fold | test UA | WA | macro-F1 | val UA | members' test UA |", "|---|---|---|---|---|---|"]
    for f in folds:
        lines.append(f"| {f} | " + " | ".join(num(ensemble.per_fold[m][f]) for m in METRICS)
                     + f" | {num(ensemble.val_ua.get(f))} | {num(ensemble.members[f])} |")
    lines.append("| **mean ± std** | " + " | ".join(f"**{mean_std(*ensemble.summary(m))}**" for m in METRICS)
                 + f" | {num(ensemble.ensemble_val_ua)} | {num(ensemble.members_ua)} |")
    lines += ["", "| member setting | seeds | test UA | val UA | gap (best epoch) | min/run |",
              "|---|---|---|---|---|---|"]
    for g, seeds in zip(ensemble.groups, ensemble.seeds):
        lines.append(f"| {g.label} | {','.join(seeds)} | {mean_std(*g.summary('test/ua')[:2])} | "
                     f"{mean_std(*g.summary('best/val_ua')[:2])} | {num(g.summary('best/gap_acc')[0])} | "
                     f"{g.minutes:.1f} |")
    return "\n".join(lines) + "\n"


def log_on_parent(client, parent_run_id: str, ensemble: Ensemble, report: Path) -> None:
    """The ensemble's figures on the sweep's parent run: means, and per fold with the fold as the step."""
    for metric in METRICS:
        client.log_metric(parent_run_id, f"ensemble/{metric}", ensemble.summary(metric)[0])
        for fold, value in ensemble.per_fold[metric].items():
            client.log_metric(parent_run_id, f"ensemble/fold/{metric}", value, step=fold)
    if ensemble.ensemble_val_ua is not None:
        client.log_metric(parent_run_id, "ensemble/val/ua", ensemble.ensemble_val_ua)
    client.set_tag(parent_run_id, "ensemble.members", ensemble.label[:5000])
    client.set_tag(parent_run_id, "ensemble.trainings_per_fold", str(ensemble.trainings))
    client.log_artifact(parent_run_id, str(report))
