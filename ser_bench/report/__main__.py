"""`python -m ser_bench.report`: the leaderboard of one or more MLflow experiments.

    python -m ser_bench.report [--tracking-uri URI] [--experiment NAME ...] [--ensemble "A | B" ...]
                               [--out DIR] [--no-log]

Writes leaderboard.md, leaderboard.html (self-contained, plots embedded) and leaderboard.csv into
--out, prints the Markdown, and logs the three files as the artifacts of a `report` run in the
(first) experiment. Nothing is written when the input cannot make a report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ser_bench.errors import UserError

HELP_URI = "MLflow tracking URI (default: %(default)s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db", help=HELP_URI)
    parser.add_argument("--experiment", action="append", help="experiment name; repeat to pool several "
                        "(default: ser_bench)")
    parser.add_argument("--ensemble", action="append", default=[], metavar='"A | B"',
                        help="also score an ensemble of these settings (each part: a piece of a setting's label in "
                        "the leaderboard, e.g. 'cnn1d + speed_pitch | resnet2d'); repeat for several")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/EXPERIMENT)")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    parser.add_argument("--mlflow-ui", metavar="URL", help="the MLflow UI that rows link to (default: a tracking "
                        "server's own address, else http://127.0.0.1:5000, where `mlflow ui` serves)")
    args = parser.parse_args(argv)
    experiments = args.experiment or ["ser_bench"]
    out = args.out or Path("reports") / experiments[0]
    try:
        files = build(args.tracking_uri, experiments, args.ensemble, args.mlflow_ui)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_all(out, files)
    print(files["leaderboard.md"])
    print(f"wrote {', '.join(str(out / name) for name in files)}")
    if not args.no_log:
        run_id = log_report(args.tracking_uri, experiments, out, files)
        print(f"logged as MLflow run {run_id} in '{reports_experiment(experiments[0])}'")
    return 0


def build(uri: str, experiments: list[str], ensembles: list[str] = (), ui: str | None = None) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    from ser_bench.report.collect import collect
    from ser_bench.report.document import document
    from ser_bench.stores import existing

    client = MlflowClient(existing(uri))
    collection = collect(client, experiments)
    md, page, table = document(client, collection, uri, dt.datetime.now().strftime("%Y-%m-%d %H:%M"), ensembles,
                                 ui)
    return {"leaderboard.md": md, "leaderboard.html": page, "leaderboard.csv": table}


def write_all(out: Path, files: dict[str, str]) -> None:
    """All three files or none: written into a temporary folder, then moved into place."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for name in files:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def reports_experiment(experiment: str) -> str:
    """Where the leaderboards of `experiment` are logged: an experiment of their own, so that they never crowd the
    training runs' list (MLflow's run list shows every run of an experiment; hiding a tag would take a filter that
    every reader types again)."""
    return f"{experiment}-leaderboards"


def log_report(uri: str, experiments: list[str], out: Path, files: dict[str, str]) -> str:
    import mlflow

    from ser_bench.tracking import ensure_experiment, git_commit

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=ensure_experiment(uri, reports_experiment(experiments[0])),
                          run_name=f"leaderboard of {', '.join(experiments)}",
                          tags={"kind": "report", "git_commit": git_commit(), "reports_on": " ".join(experiments)}) \
            as run:
        for name in files:
            mlflow.log_artifact(str(out / name))
    return run.info.run_id


if __name__ == "__main__":
    sys.exit(main())
