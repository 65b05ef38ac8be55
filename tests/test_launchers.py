"""Sweeps on launchers that leave the process: Hydra's submitit launcher with its local executor (real submitit
jobs, pickled and run as separate processes), through the real CLI: nesting, a failing job, resume."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from .conftest import tiny_overrides
from .test_cli import cli

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def test_submitit_local_sweep_with_a_failing_job_then_resume(cache_dir, tmp_path):
    args = ["-m", "hydra/launcher=submitit_local", "model.optim.lr=0.003,1e30", *tiny_overrides(cache_dir, tmp_path),
            "trainer.max_epochs=2", f"hydra.sweep.dir={tmp_path}/sweep"]
    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("ser_bench").experiment_id
    runs = client.search_runs([exp])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    jobs = {r.data.params["model.optim.lr"]: r for r in runs if r.data.tags.get("kind") != "sweep"}
    assert jobs["0.003"].info.status == "FINISHED" and jobs["1e+30"].info.status == "FAILED"
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs.values())
    pids = {r.data.tags["pid"] for r in (parent, *jobs.values())}
    assert len(pids) == 3  # the launcher and one submitit process per job
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))  # submitit's own records

    again = cli(*args[:-1], f"hydra.sweep.dir={tmp_path}/sweep2")
    assert "0 finished, 1 skipped (already FINISHED), 1 failed" in again.stdout
    assert len([r for r in client.search_runs([exp]) if r.data.params.get("model.optim.lr") == "0.003"]) == 1
    logs = "".join(p.read_text() for p in (tmp_path / "sweep2" / ".submitit").glob("*/*_log.out"))
    assert "skip job 0 (model.optim.lr=0.003): already FINISHED" in logs  # said in the job's own process
