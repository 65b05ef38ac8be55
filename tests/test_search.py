"""Hyperparameter search through Hydra's Optuna sweeper (`-m hydra/sweeper=optuna`), by the real CLI: the objective
is the best validation UA and never a test metric, a failed trial is recorded and the study goes on, the study lives
beside the MLflow store and a re-run continues it, each trial is a child run of the sweep's parent."""

from __future__ import annotations

import pytest

from ser_bench import cli, search
from ser_bench.errors import UserError

from .conftest import finished_and_failed, tiny_overrides
from .test_cli import cli as run_cli


def test_the_objective_is_the_best_validation_ua_never_a_test_metric(monkeypatch):
    metrics = {"test/ua": 0.9, "test/wa": 0.9, "test/macro_f1": 0.9, "best/val_ua": 0.3}
    assert cli.objective(metrics) == 0.3
    monkeypatch.setattr("ser_bench.train.run", lambda cfg, sweep=None: {"metrics": metrics, "run_id": "x"})
    monkeypatch.setattr(cli, "print_result", lambda cfg, result: None)
    monkeypatch.setattr(cli.sweeps, "job_label", lambda sweep: "job 0")
    monkeypatch.setattr(cli.sweeps, "write_result", lambda *a, **k: None)
    from omegaconf import OmegaConf

    assert cli.sweep_job(OmegaConf.create({"resume": False}), {}) == 0.3


def test_study_store_and_name():
    assert search.storage_beside("sqlite:////a/b/mlflow.db") == "sqlite:////a/b/optuna.db"
    assert search.storage_beside("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/optuna.db"
    assert search.storage_beside("http://127.0.0.1:5000") == "sqlite:///mlruns/optuna.db"
    one = search.study_name("exp", ["model=resnet2d", "cache_dir=/x", "tracking.uri=sqlite:///a.db",
                                    "hydra.sweeper.n_trials=20", "model.optim.lr=interval(1e-4,3e-3)"])
    other = search.study_name("exp", ["model.optim.lr=interval(1e-4,3e-3)", "model=resnet2d", "cache_dir=/y"])
    assert one == other == "exp | model.optim.lr=interval(1e-4,3e-3) model=resnet2d"


def test_missing_plugin_is_one_line(monkeypatch):
    real = search.importlib.util.find_spec
    monkeypatch.setattr(search.importlib.util, "find_spec",
                        lambda name: None if name.startswith("hydra_plugins.hydra_optuna") else real(name))
    with pytest.raises(UserError, match="pip install --no-deps hydra-optuna-sweeper"):
        search.check_installed()


def test_optuna_search_with_a_failing_trial_then_a_rerun_continues_the_study(cache_dir, tmp_path):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = ["-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "model.optim.lr=choice(0.003,1e30)",
            *tiny_overrides(cache_dir, tmp_path), "trainer.max_epochs=3"]
    proc = run_cli(*args, f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 1, proc.stderr[-3000:]  # the failed trial is reported in the exit status
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    _, _, parent, jobs = finished_and_failed(tmp_path)
    assert parent.data.tags["sweep.sweeper"] == "OptunaSweeper" and parent.data.tags["optuna.direction"] == "maximize"

    storage = f"sqlite:///{tmp_path}/optuna.db"  # beside mlflow.db
    assert parent.data.tags["optuna.storage"] == storage
    study = optuna.load_study(study_name=parent.data.tags["optuna.study"], storage=storage)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "FAIL"]
    (done,) = [t for t in study.trials if t.state.name == "COMPLETE"]
    finished = jobs["0.003"].data.metrics
    assert finished["test/ua"] != finished["best/val_ua"]  # else the next line could not tell the two apart
    assert done.value == pytest.approx(finished["best/val_ua"]) and done.params == {"model.optim.lr": 0.003}

    again = run_cli(*[a.replace("sampler=grid", "sampler=random") for a in args], "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp_path}/sweep2")
    assert f"Study name: {study.study_name}" in again.stderr + again.stdout, again.stderr[-3000:]
    study = optuna.load_study(study_name=study.study_name, storage=storage)
    assert len(study.trials) == 4  # the same study, continued: two more trials beside the first two
    # The random sampler (seed 0) draws each value once: the failing one fails again and is recorded; the one that
    # FINISHED before is skipped (resume), and its stored validation UA is the trial's value.
    assert sorted(t.state.name for t in study.trials[2:]) == ["COMPLETE", "FAIL"]
    (skipped,) = [t for t in study.trials[2:] if t.state.name == "COMPLETE"]
    assert "skip job" in again.stdout and skipped.value == pytest.approx(finished["best/val_ua"])
