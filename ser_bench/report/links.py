"""Links from a leaderboard row to its runs in MLflow's web UI: one run's page, or MLflow's compare page for the
runs of a setting (its folds and seeds). The routes are the UI's own (`#/experiments/E/runs/R`,
`#/compare-runs?runs=[...]&experiments=[...]`)."""

from __future__ import annotations

import json
from urllib.parse import quote

DEFAULT_UI = "http://127.0.0.1:5000"  # what `mlflow ui` and `python -m ser_bench.server` serve


def ui_base(tracking_uri: str, given: str | None = None) -> str:
    """The UI's address: the one given, a tracking server's own, else `mlflow ui`'s default."""
    if given:
        return given.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_UI


def runs_url(base: str, records) -> str:
    ids = sorted(r.run_id for r in records)
    experiments = sorted({r.experiment_id for r in records})
    if len(ids) == 1:
        return f"{base}/#/experiments/{experiments[0]}/runs/{ids[0]}"
    return (f"{base}/#/compare-runs?runs={quote(json.dumps(ids, separators=(',', ':')))}"
            f"&experiments={quote(json.dumps(experiments, separators=(',', ':')))}")
