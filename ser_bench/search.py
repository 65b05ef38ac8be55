"""Hyperparameter search with Hydra's Optuna sweeper (`-m hydra/sweeper=optuna`): where its study lives, what it is
called, and a one-line error where the plugin is missing. conf/hydra/sweeper/ser_optuna.yaml holds the settings; each
trial is an ordinary sweep job (ser_bench.sweep), whose return value, the best validation UA, is the objective."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ser_bench.errors import UserError

INSTALL = 'pip install "optuna>=4" && pip install --no-deps hydra-optuna-sweeper==1.3.0'


def storage_beside(tracking_uri: str) -> str:
    """The study's SQLite store next to a SQLite MLflow store (optuna.db beside mlflow.db); mlruns/optuna.db for a
    tracking server."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return prefix + str(Path(tracking_uri[len(prefix):]).parent / "optuna.db")
    return prefix + "mlruns/optuna.db"


def study_name(experiment: str, overrides) -> str:
    """The experiment and the command's settings that can change a result (result_key.IGNORED left out: Hydra's
    own, paths, tracking, display): the same search, wherever it is logged from, names the same study."""
    from ser_bench.result_key import IGNORED

    def ignored(override: str) -> bool:
        key = override.lstrip("+~").split("=", 1)[0].replace("/", ".")
        return any(key == k or key.startswith(k + ".") for k in IGNORED)

    own = sorted(str(o) for o in overrides if not ignored(str(o)))
    return f"{experiment} | {' '.join(own) or 'defaults'}"[:500]


def register_resolvers() -> None:
    import warnings

    from omegaconf import OmegaConf

    # The plugin builds optuna's older distribution classes and passes TPE options optuna 4 deprecates: optuna warns
    # about them on every trial.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\.")

    for name, fn in (("ser_bench.optuna_storage", storage_beside), ("ser_bench.study_name", study_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def check_installed() -> None:
    """The plugin pins optuna<3, whose RDB storage fails on SQLAlchemy 2 (which MLflow brings): it is installed
    without its pin, beside a current optuna (README, `.ci/run`)."""
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None or \
            importlib.util.find_spec("optuna") is None:
        raise UserError(f"hydra/sweeper=optuna needs Hydra's Optuna sweeper: {INSTALL}")
    from importlib.metadata import version

    if int(version("optuna").split(".")[0]) < 3:
        raise UserError(f"hydra/sweeper=optuna: optuna {version('optuna')} cannot open its SQLite study store beside "
                        f"MLflow's SQLAlchemy 2; {INSTALL}")
