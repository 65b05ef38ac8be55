"""Sweeps on launchers that leave the process, through the real CLI: Hydra's submitit launcher with its local executor
(real submitit jobs, pickled and run as separate processes) and Hydra's Ray launcher against a Ray cluster started on
127.0.0.1: nesting, a failing job, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import tiny_overrides
from .test_cli import cli


def test_submitit_local_sweep_with_a_failing_job_then_resume(cache_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A Ray cluster on 127.0.0.1 (`ray start --head`), stopped afterwards; its address."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("no `ray` command beside this Python")
    address = f"127.0.0.1:{_free_port()}"
    start = subprocess.run([ray, "start", "--head", f"--port={address.split(':')[1]}", "--node-ip-address=127.0.0.1",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                           capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield address
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_ray_sweep_on_a_local_cluster_with_a_failing_job_then_resume(cache_dir, tmp_path, ray_cluster):
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "ser_bench", "-m", "hydra/launcher=ray", "model.optim.lr=0.003,1e30",
            *tiny_overrides(cache_dir, tmp_path), "trainer.max_epochs=2"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([*args, f"hydra.sweep.dir={tmp_path}/sweep"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    assert "Connecting to existing Ray cluster at address" in proc.stderr + proc.stdout  # the one started above
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("ser_bench").experiment_id
    runs = client.search_runs([exp])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    jobs = {r.data.params["model.optim.lr"]: r for r in runs if r.data.tags.get("kind") != "sweep"}
    assert jobs["0.003"].info.status == "FINISHED" and jobs["1e+30"].info.status == "FAILED"
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs.values())
    assert len({r.data.tags["pid"] for r in (parent, *jobs.values())}) == 3  # the launcher and two Ray workers

    again = subprocess.run([*args, f"hydra.sweep.dir={tmp_path}/sweep2"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert "0 finished, 1 skipped (already FINISHED), 1 failed" in again.stdout, again.stderr[-3000:]
    assert len([r for r in client.search_runs([exp]) if r.data.params.get("model.optim.lr") == "0.003"]) == 1


def test_the_sweep_benchmark_names_each_launchers_settings():
    from ser_bench.bench.sweep import launcher_overrides

    assert launcher_overrides("basic") == ([], 1)
    assert launcher_overrides("joblib:2") == (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 2)
    overrides, n = launcher_overrides("ray")
    assert n == 1 and "hydra.sweeper.max_batch_size=1" in overrides and "hydra/launcher=ray" in overrides
    with pytest.raises(SystemExit, match="no such launcher"):
        launcher_overrides("dask")
    with pytest.raises(SystemExit, match="one job at a time"):
        launcher_overrides("basic:2")
