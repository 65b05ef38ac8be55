"""`--model`: a run id, `runs:/ID/model`, `models:/NAME/VERSION`, `models:/NAME@alias`, or a local folder
(an MLflow model folder or a bare ser_bench model folder) -> the local ser_bench model folder.

MLflow is imported only for the forms that need the tracking store, and never starts a server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ser_bench.errors import UserError
from ser_bench.inference import bundle
from ser_bench.stores import existing

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
ARTIFACT = "model"  # where every run logs its MLflow model (runs:/ID/model)


def model_uri(spec: str) -> str | None:
    """The MLflow model URI that `spec` names, or None for a local path."""
    if RUN_ID.match(spec):
        return f"runs:/{spec}/{ARTIFACT}"
    if spec.startswith(("runs:/", "models:/")):
        return spec
    return None


def local_folder(path: Path) -> Path:
    """The ser_bench model folder inside an MLflow model folder (its pyfunc `bundle` artifact), or `path` itself."""
    if (path / bundle.META).is_file():
        return path
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        import yaml

        flavors = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors", {})
        flavor = flavors.get("python_function", {})
        rel = (flavor.get("artifacts") or {}).get("bundle", {}).get("path")
        if rel and (path / rel / bundle.META).is_file():
            return path / rel
        raise UserError(f"{path} is an MLflow model but not a ser_bench one (no ser_bench model inside)")
    raise UserError(f"{path} is neither an MLflow model folder (MLmodel) nor a ser_bench model folder ({bundle.META})")


def resolve(spec: str, tracking_uri: str) -> Path:
    """The local ser_bench model folder for `spec` (downloaded from the store where it lives there)."""
    uri = model_uri(spec)
    if uri is None:
        path = Path(spec).expanduser()
        if not path.exists():
            raise UserError(f"--model {spec}: no such folder, and not a run id (32 hex digits), runs:/ID/model, "
                            f"models:/NAME/VERSION or models:/NAME@alias")
        if not path.is_dir():
            raise UserError(f"--model {spec} is a file; give the model folder (or a run id / models:/ URI)")
        return local_folder(path)
    return local_folder(_download(uri, existing(tracking_uri, "pass --tracking-uri (the store the run logged to)")))


def _download(uri: str, tracking_uri: str) -> Path:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    _check_exists(uri, mlflow.MlflowClient(tracking_uri))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
    except (MlflowException, OSError) as err:
        if uri.startswith("runs:/"):
            run_id = uri.split("/")[1]
            raise UserError(f"run {run_id} logged no model (runs trained before ser_bench logged one per run): "
                            f"`python -m ser_bench.export {run_id}` makes it from the run's checkpoint") from None
        raise UserError(f"cannot download {uri} from {tracking_uri}: {str(err).splitlines()[0]}") from None


def _check_exists(uri: str, client) -> None:
    """One clear line for a run, registered model, version or alias that the store does not hold."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("runs:/"):
        run_id = uri.split("/")[1]
        try:
            client.get_run(run_id)
        except MlflowException:
            raise UserError(f"no run {run_id} in {client.tracking_uri}: check the id, or pass --tracking-uri") from None
        return
    name, _, rest = uri[len("models:/"):].partition("/")
    name, alias = name.split("@", 1) if "@" in name else (name, None)
    try:
        client.get_registered_model(name)
    except MlflowException:
        known = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise UserError(f"no registered model '{name}' in {client.tracking_uri} (registered: {known}); "
                        f"`python -m ser_bench.export RUN_ID --register {name}` registers one") from None
    try:
        if alias:
            client.get_model_version_by_alias(name, alias)
        else:
            client.get_model_version(name, rest)
    except MlflowException:
        model = client.get_registered_model(name)
        aliases = ", ".join(sorted(model.aliases)) or "none"
        versions = ", ".join(str(v.version) for v in client.search_model_versions(f"name='{name}'")) or "none"
        what = f"alias '{alias}'" if alias else f"version '{rest}'"
        raise UserError(f"registered model '{name}' has no {what} (aliases: {aliases}; versions: {versions})") from None
