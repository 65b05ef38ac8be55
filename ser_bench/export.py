"""`python -m ser_bench.export RUN_ID`: a run's model into MLflow's registry, or out as ONNX.

    python -m ser_bench.export RUN_ID                                   # make the run's model where it has none
    python -m ser_bench.export RUN_ID --register ser --alias champion   # register it (tagged with test UA, protocol)
    python -m ser_bench.export RUN_ID --onnx model.onnx                 # ONNX, log-mel inside (cnn1d, cnn2d, resnet2d)

A run trained before ser_bench logged a model per run gets one made from its checkpoint first (the tested
weights, calibrated on its validation predictions); `--rebuild` makes it again for any run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ser_bench.errors import UserError
from ser_bench.predict import DEFAULT_URI

REGISTRY_TAGS = ("test_ua", "test_wa", "test_macro_f1", "best_val_ua", "split", "fold", "folds_total", "corpus",
                 "labels", "actors_test", "model", "augment", "seed", "leaky", "run_id")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.export", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("run_id", help="the MLflow run (32 hex digits)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
                        help="the run's MLflow store (default: %(default)s)")
    parser.add_argument("--register", metavar="NAME", help="register the run's model under NAME (a new version)")
    parser.add_argument("--alias", metavar="A", help="with --register: point alias A (e.g. champion) at that version")
    parser.add_argument("--onnx", type=Path, metavar="PATH", help="write the model as ONNX to PATH")
    parser.add_argument("--rebuild", action="store_true", help="make the run's model from its checkpoint again, "
                        "even where it has one")
    return parser.parse_args(argv)


def run_models(client, run) -> list:
    """The run's logged models named `model`, oldest first."""
    from mlflow.exceptions import MlflowException

    from ser_bench.inference.sources import ARTIFACT

    run = client.get_run(run.info.run_id)  # fresh: a rebuild has just added one
    models = []
    for output in run.outputs.model_outputs if run.outputs else []:
        try:
            models.append(client.get_logged_model(output.model_id))
        except MlflowException:  # deleted by an earlier rebuild
            continue
    return sorted((m for m in models if m.name == ARTIFACT), key=lambda m: m.creation_timestamp)


def rebuild_model(client, run) -> dict:
    """Log a model made from the run's checkpoint into the run, which keeps its status and end time."""
    import mlflow

    from ser_bench.inference import from_run, mlflow_model
    from ser_bench.report.collect import artifact

    tested = from_run.rebuild(run.info.run_id, lambda rid, name: artifact(client, rid, name))
    with mlflow.start_run(run_id=run.info.run_id):
        figures = mlflow_model.log_run_model(
            tested.net, tested.net_spec, tested.class_names, window_seconds=tested.window_seconds,
            precision=tested.precision, val_rows=tested.val_rows, test_rows=tested.test_rows, omit=tested.omit,
            source=mlflow_model.source(run))
    client.set_terminated(run.info.run_id, run.info.status, end_time=run.info.end_time)
    for old in run_models(client, run)[:-1]:  # runs:/ID/model then names the new one alone
        client.delete_logged_model(old.model_id)
    return figures


def register(client, run, name: str, alias: str | None) -> str:
    import mlflow

    from ser_bench.inference.mlflow_model import source

    info = source(run)
    tags = {k: str(info[k]) for k in REGISTRY_TAGS if k in info}
    model_id = run_models(client, run)[-1].model_id
    version = mlflow.register_model(f"models:/{model_id}", name, tags=tags)
    protocol = (f"{info.get('corpus', '?')}, split {info.get('split', '?')} fold {info.get('fold', '?')} (test actors "
                f"{info.get('actors_test', '?')}, unseen in training and model selection): test UA "
                f"{info.get('test_ua', float('nan')):.3f}, WA {info.get('test_wa', float('nan')):.3f}")
    client.update_model_version(name, version.version, description=protocol)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return version.version


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.alias and not args.register:
            raise UserError("--alias needs --register NAME")
        export(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def export(args: argparse.Namespace) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    from ser_bench.inference.sources import RUN_ID
    from ser_bench.stores import existing

    if not RUN_ID.match(args.run_id):
        raise UserError(f"{args.run_id} is not a run id (32 hex digits)")
    uri = existing(args.tracking_uri, "pass --tracking-uri (the store the run logged to)")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(args.run_id)
    except MlflowException:
        raise UserError(f"no run {args.run_id} in {uri}: check the id, or pass --tracking-uri") from None
    if run.info.status != "FINISHED" or "test/ua" not in run.data.metrics:
        raise UserError(f"run {args.run_id} is {run.info.status} without a test result: only finished training "
                        f"runs have a tested model")
    if args.rebuild or not run_models(client, run):
        figures = rebuild_model(client, run)
        print(f"logged the model of run {args.run_id} from its checkpoint (temperature "
              f"{figures['calibration/temperature']:.3f} fitted on its validation actors): runs:/{args.run_id}/model")
    else:
        print(f"run {args.run_id} has its model: runs:/{args.run_id}/model")
    if args.register:
        version = register(client, run, args.register, args.alias)
        alias = f", alias {args.alias}: models:/{args.register}@{args.alias}" if args.alias else ""
        print(f"registered as {args.register} version {version} (models:/{args.register}/{version}){alias}")
    if args.onnx:
        export_onnx(args.run_id, uri, args.onnx)


def export_onnx(run_id: str, uri: str, path: Path) -> None:
    import numpy as np

    from ser_bench.inference import bundle, onnx_export, sources

    scorer = bundle.load(sources.resolve(run_id, uri))
    onnx_export.export(scorer, path)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(s * scorer.sample_rate))).astype(np.float32) for s in (0.5, 2.7, 7.3)]
    diff = onnx_export.parity(path, scorer, clips)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; waveform in, probabilities out); onnxruntime vs "
          f"PyTorch on 3 test signals: max |difference| {diff:.1e}")
    if diff > 1e-4:
        raise UserError(f"the ONNX model at {path} disagrees with PyTorch by {diff:.1e} (> 1e-4): do not use it")


if __name__ == "__main__":
    sys.exit(main())
