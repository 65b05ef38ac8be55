"""Mean and std over folds of the finished runs in one MLflow experiment, grouped by corpus/split/model/augment.

    python experiments/fold_summary.py EXPERIMENT [EXPERIMENT ...] [--tracking-uri URI]

A stop-gap until the leaderboard report exists: it prints what MLflow holds, nothing more.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from mlflow.tracking import MlflowClient

KEYS = ("corpus", "split", "model", "augment")
METRICS = ("test/ua", "test/wa", "test/macro_f1", "best/gap_acc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    args = parser.parse_args()
    client = MlflowClient(args.tracking_uri)
    ids = []
    for name in args.experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise SystemExit(f"error: no experiment {name!r} in {args.tracking_uri}")
        ids.append(exp.experiment_id)
    groups: dict[tuple, list] = defaultdict(list)
    for run in client.search_runs(ids, "attributes.status = 'FINISHED'", max_results=10_000):
        if run.data.tags.get("kind") != "sweep":  # a sweep's parent run holds no result of its own
            groups[tuple(run.data.tags.get(k, "?") for k in KEYS)].append(run)
    print("| " + " | ".join(KEYS) + " | folds | seeds | " + " | ".join(METRICS)
          + " | train min/run | test/ua per fold |")
    print("|" + "---|" * (len(KEYS) + 4 + len(METRICS)))
    for key, runs in sorted(groups.items()):
        cells = []
        for metric in METRICS:
            values = np.array([r.data.metrics[metric] for r in runs if metric in r.data.metrics])
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}")
        minutes = np.mean([(r.info.end_time - r.info.start_time) / 60_000 for r in runs])
        folds = sorted({int(r.data.tags["fold"]) for r in runs})
        seeds = sorted({r.data.tags["seed"] for r in runs})
        by_fold = sorted(runs, key=lambda r: int(r.data.tags["fold"]))
        per_fold = " ".join(f"{r.data.metrics['test/ua']:.3f}" for r in by_fold)
        print(f"| {' | '.join(key)} | {folds} | {','.join(seeds)} | {' | '.join(cells)} | {minutes:.1f} | {per_fold} |")


if __name__ == "__main__":
    main()
