"""Sweeps on launchers that leave the process, through the real CLI: Hydra's submitit launcher with its local executor
(real submitit jobs, pickled and run as separate processes) and Hydra's Ray launcher against a Ray cluster started on
127.0.0.1: nesting, a failing job, resume."""

from __future__ import annotations

import pytest

from .conftest import finished_and_failed, tiny_overrides
from .test_cli import cli


def test_submitit_local_sweep_with_a_failing_job_then_resume(cache_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    args = ["-m", "hydra/launcher=submitit_local", "model.optim.lr=0.003,1e30", *tiny_overrides(cache_dir, tmp_path),
            "trainer.max_epochs=2", f"hydra.sweep.dir={tmp_path}/sweep"]
    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    client, exp, parent, jobs = finished_and_failed(tmp_path)
    pids = {r.data.tags["pid"] for r in (parent, *jobs.values())}
    assert len(pids) == 3  # the launcher and one submitit process per job
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))  # submitit's own records

    again = cli(*args[:-1], f"hydra.sweep.dir={tmp_path}/sweep2")
    assert "0 finished, 1 skipped (already FINISHED), 1 failed" in again.stdout
    assert len([r for r in client.search_runs([exp]) if r.data.params.get("model.optim.lr") == "0.003"]) == 1
    logs = "".join(p.read_text() for p in (tmp_path / "sweep2" / ".submitit").glob("*/*_log.out"))
    assert "skip job 0 (model.optim.lr=0.003): already FINISHED" in logs  # said in the job's own process


@pytest.fixture
def ray_cluster():
    """A Ray cluster on 127.0.0.1 (`ray start --head`), stopped afterwards; its address."""
    from ser_bench.bench.sweep import local_ray_cluster, ray_command

    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    if ray_command() is None:
        pytest.skip("no `ray` command")
    with local_ray_cluster(ray_command()) as address:
        yield address


def test_ray_sweep_on_a_local_cluster_with_a_failing_job_then_resume(cache_dir, tmp_path, ray_cluster):
    args = ["-m", "hydra/launcher=ray", "model.optim.lr=0.003,1e30", *tiny_overrides(cache_dir, tmp_path),
            "trainer.max_epochs=2"]
    env = {"RAY_ADDRESS": ray_cluster}
    proc = cli(*args, f"hydra.sweep.dir={tmp_path}/sweep", env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    assert "Connecting to existing Ray cluster at address" in proc.stderr + proc.stdout  # the one started above
    client, exp, parent, jobs = finished_and_failed(tmp_path)
    assert len({r.data.tags["pid"] for r in (parent, *jobs.values())}) == 3  # the launcher and two Ray workers

    again = cli(*args, f"hydra.sweep.dir={tmp_path}/sweep2", env=env)
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
