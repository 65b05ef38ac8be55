"""Calibration per setting: each run's validation temperature and the expected calibration error of its test
clips before and after it, plus a reliability diagram of the leader.

A run logs its figures (`calibration/temperature`, `test/ece`, `test/ece_calibrated`); runs logged before
that are recomputed the same way from their `val_predictions.csv` and `predictions.csv`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable

import numpy as np

from ser_bench import calibration
from ser_bench.report import figures, render
from ser_bench.report.collect import Record
from ser_bench.report.render import Table, num
from ser_bench.report.stats import Group

KEYS = ("calibration/temperature", "test/ece", "test/ece_calibrated", "val/ece", "val/ece_calibrated")
Fetch = Callable[[str, str], "str | None"]


def _rows(fetch: Fetch, run_id: str, name: str) -> list[dict] | None:
    path = fetch(run_id, name)
    if path is None:
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def class_names(rows: list[dict]) -> list[str]:
    return [k[2:] for k in rows[0] if k.startswith("p_")]


def run_figures(r: Record, fetch: Fetch) -> dict[str, float] | None:
    """The run's calibration figures: logged, or computed from its prediction files; None without them."""
    if all(k in r.metrics for k in KEYS):
        return {k: r.metrics[k] for k in KEYS}
    val, test = _rows(fetch, r.run_id, "val_predictions.csv"), _rows(fetch, r.run_id, "predictions.csv")
    if not val or not test:
        return None
    names = class_names(test)
    return calibration.summary(calibration.from_rows(val, names), calibration.from_rows(test, names))


def _mean_std(values: list[float]) -> str:
    return render.mean_std(float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else np.nan)


def table(corpus: str, split: str, members: list[Group], fetch: Fetch) -> Table | None:
    rows, leader_runs = [], []
    for g in members:
        per_run = [(r, f) for r in g.records if (f := run_figures(r, fetch)) is not None]
        if not per_run:
            continue
        if g.rank == 1:
            leader_runs = per_run
        col = {k: [f[k] for _, f in per_run] for k in KEYS}
        rows.append([g.label, f"{len(per_run)}/{len(g.records)}", num(float(np.mean(col[KEYS[0]])), 2),
                     _mean_std(col["test/ece"]), _mean_std(col["test/ece_calibrated"]),
                     _mean_std(col["val/ece"]), _mean_std(col["val/ece_calibrated"])])
    if not rows:
        return None
    headers = ["setting", "runs", "temperature (mean)", "test ECE before", "test ECE after", "val ECE before",
               "val ECE after (fitted there)"]
    note = (f"Temperature scaling: each run fits one temperature T on its validation actors' predictions at the tested "
            f"checkpoint (never the test actors'); its MLflow model reports softmax(logits / T), which keeps every "
            f"prediction and so UA and WA. ECE = expected calibration error of the top-class confidence, "
            f"{calibration.N_BINS} equal-width bins, mean ± std over runs (lower is better). T > 1 means the network "
            f"was over-confident. The validation ECE after scaling is measured on the clips T was fitted on.")
    out = Table(f"{corpus} · {split}: calibration", note, headers, rows)
    if leader_runs:
        out.figures.append(_reliability(members, leader_runs, fetch))
    return out


def _reliability(members: list[Group], runs: list[tuple[Record, dict]], fetch: Fetch) -> tuple[str, bytes]:
    """The leader's test clips pooled over its runs, before and after each run's own temperature."""
    before, after, labels = [], [], []
    for r, f in runs:
        rows = _rows(fetch, r.run_id, "predictions.csv")
        if not rows:
            continue
        probs, y = calibration.from_rows(rows, class_names(rows))
        before.append(probs)
        after.append(calibration.scaled(probs, f["calibration/temperature"]))
        labels.append(y)
    leader = next(g for g in members if g.rank == 1)
    y = np.concatenate(labels) if labels else np.zeros(0, int)
    curves = {f"{name} (ECE {calibration.ece(np.concatenate(p), y):.3f})": calibration.reliability(np.concatenate(p), y)
              for name, p in (("before", before), ("after temperature scaling", after)) if p}
    caption = (f"Reliability diagram of the leader, {leader.label}: accuracy against confidence over its test clips "
               f"({len(y)} from {len(labels)} runs), before and after temperature scaling")
    return caption, render.png(figures.reliability(curves, f"leader: {leader.label}"))
