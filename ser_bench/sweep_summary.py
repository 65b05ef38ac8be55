"""A sweep's result where the sweep ends: one row per setting (the job's swept values but fold and seed), with the
folds found and mean ± std of test and validation UA; the same figures as the parent run's metrics, so MLflow's run
list compares sweeps at a glance. The setting with the highest mean validation UA is marked chosen (never the
test UA); the full report is one command away."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

PER_RUN = ("split.fold", "seed")  # swept by design within one setting


def setting_of(overrides: list[str]) -> str:
    keep = [o.lstrip("+") for o in overrides if o.lstrip("+").split("=", 1)[0] not in PER_RUN]
    return " ".join(keep) or "defaults"


def rows(client, results: list[dict]) -> list[dict]:
    """One row per setting, from the FINISHED runs of the sweep's finished and skipped jobs."""
    runs: dict[str, list] = defaultdict(list)
    for r in results:
        if r["status"] in ("finished", "skipped") and r.get("run_id"):
            run = client.get_run(r["run_id"])
            runs[r.get("setting", "defaults")].append(run)
    out = []
    for setting, group in runs.items():
        by_fold: dict[str, list] = defaultdict(list)  # seeds averaged within a fold, as the leaderboard does
        for run in group:
            by_fold[run.data.tags.get("fold", "?")].append(run.data.metrics)
        test = [np.mean([m.get("test/ua", np.nan) for m in ms]) for ms in by_fold.values()]
        val = [np.mean([m.get("best/val_ua", np.nan) for m in ms]) for ms in by_fold.values()]
        out.append({"setting": setting, "folds": len(by_fold), "runs": len(group),
                    "test_ua_mean": float(np.mean(test)), "test_ua_std": float(np.std(test, ddof=1)) if len(test) > 1
                    else 0.0, "val_ua_mean": float(np.mean(val)),
                    "val_ua_std": float(np.std(val, ddof=1)) if len(val) > 1 else 0.0})
    out.sort(key=lambda r: -r["val_ua_mean"])
    if out:
        out[0]["chosen"] = True
    return out


def table(summary: list[dict]) -> str:
    width = max([len(r["setting"]) for r in summary] + [7])
    lines = [f"  {'setting':<{width}}  folds  runs  test UA          val UA",
             *(f"  {r['setting']:<{width}}  {r['folds']:>5}  {r['runs']:>4}  {r['test_ua_mean']:.3f} ± "
               f"{r['test_ua_std']:.3f}    {r['val_ua_mean']:.3f} ± {r['val_ua_std']:.3f}"
               f"{'   (chosen on val UA)' if r.get('chosen') else ''}" for r in summary)]
    return "\n".join(lines)


def metric_key(setting: str) -> str:
    """A setting as part of an MLflow metric name (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^\w\-./ ]", "-", setting)[:200]


def parent_metrics(summary: list[dict]) -> dict[str, float]:
    metrics: dict[str, float] = {"settings": len(summary)}
    for r in summary:
        prefix = f"setting/{metric_key(r['setting'])}/"
        metrics.update({prefix + k: r[k] for k in ("folds", "test_ua_mean", "test_ua_std", "val_ua_mean")})
    chosen = next((r for r in summary if r.get("chosen")), None)
    if chosen:
        metrics.update({f"chosen/{k}": chosen[k] for k in ("folds", "test_ua_mean", "test_ua_std", "val_ua_mean",
                                                           "val_ua_std")})
    return metrics
