"""Sweeps through the real command line: parallel jobs against SQLite and a tracking server, one
parent run per sweep, resume by config hash, a crashing job that does not stop the others."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from .conftest import ROOT, tiny_overrides
from .test_cli import cli

PARALLEL = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def _runs(uri: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ser_bench")
    return client, client.search_runs([exp.experiment_id], order_by=["start_time ASC"])


def _check_sweep(uri: str, n_children: int) -> None:
    client, runs = _runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == n_children
    assert all(r.info.status == "FINISHED" for r in (parent, *children))
    assert {r.data.tags["sweep_id"] for r in children} == {parent.data.tags["sweep_id"]}
    assert parent.data.tags["jobs.finished"] == str(n_children)
    assert "overfitting.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_parallel_sweep_on_sqlite_then_resume(cache_dir, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # no store yet: the two jobs must not race to create it
    args = ["-m", *PARALLEL, "augment=none,noise", *tiny_overrides(cache_dir, tmp_path), "trainer.max_epochs=1"]
    proc = cli(*args, f"hydra.sweep.dir={tmp_path}/sweep1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 finished, 0 skipped" in proc.stdout
    _check_sweep(uri, 2)
    # The result where the sweep ends: a row per setting, the chosen one by validation UA, the report's command.
    client, runs = _runs(uri)
    children = {r.data.params["augment.name"]: r for r in runs if r.data.tags.get("kind") != "sweep"}
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    for name, run in children.items():
        ua, val = run.data.metrics["test/ua"], run.data.metrics["best/val_ua"]
        assert re.search(rf"augment={name} +1 +1 +{ua:.3f} ± 0.000 +{val:.3f} ± 0.000", proc.stdout), proc.stdout
        assert parent.data.metrics[f"setting/augment-{name}/test_ua_mean"] == pytest.approx(ua)
    chosen = max(children, key=lambda n: children[n].data.metrics["best/val_ua"])  # first on ties, as sorted
    assert parent.data.tags["chosen.setting"] == f"augment={chosen}"
    assert parent.data.metrics["chosen/test_ua_mean"] == pytest.approx(children[chosen].data.metrics["test/ua"])
    assert "full report: python -m ser_bench.report --tracking-uri" in proc.stdout

    again = cli(*args, f"hydra.sweep.dir={tmp_path}/sweep2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 finished, 2 skipped" in again.stdout and again.stdout.count("already FINISHED as run") == 2
    assert "no new parent run is kept" in again.stdout and "(chosen on val UA)" in again.stdout
    _, runs = _runs(uri)
    assert sum(r.data.tags.get("kind") != "sweep" for r in runs) == 2  # nothing trained twice
    assert sum(r.data.tags.get("kind") == "sweep" for r in runs) == 1  # and no second, empty parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ser_bench.server", "--store", f"sqlite:///{tmp_path}/srv/mlflow.db",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # seconds when idle; minutes on a machine busy with training
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                if time.monotonic() > deadline:
                    pytest.fail("MLflow server did not start in 180 s")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow  # 40 s (a server's start and a parallel sweep); the default suite keeps under 14 minutes
def test_parallel_sweep_on_tracking_server(cache_dir, tmp_path, server):
    proc = cli("-m", *PARALLEL, "augment=none,noise", *tiny_overrides(cache_dir, tmp_path), "trainer.max_epochs=1",
               "tracking=server", f"tracking.uri={server}", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_sweep(server, 2)
    assert (tmp_path / "srv" / "artifacts").is_dir()  # artifacts went through the server, beside its store


def test_unreachable_server_is_one_line(cache_dir, tmp_path):
    proc = cli(*tiny_overrides(cache_dir, tmp_path), "tracking=server", f"tracking.uri=http://127.0.0.1:{_free_port()}",
               f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no MLflow server answers" in proc.stderr and "python -m ser_bench.server" in proc.stderr


def test_a_crashing_job_is_recorded_and_the_others_go_on(cache_dir, tmp_path):
    """A job whose training diverges (NaN loss) fails inside its run; the other finishes."""
    proc = cli("-m", "model.optim.lr=0.003,1e30", *tiny_overrides(cache_dir, tmp_path),
               "trainer.max_epochs=3", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 1
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    assert "failed: job 1 (model.optim.lr=1e+30): NonFiniteLoss" in proc.stderr
    client, runs = _runs(f"sqlite:///{tmp_path}/mlflow.db")
    status = {r.data.params.get("model.optim.lr"): r for r in runs if r.data.tags.get("kind") != "sweep"}
    assert status["0.003"].info.status == "FINISHED"
    assert status["1e+30"].info.status == "FAILED" and "training diverged" in status["1e+30"].data.tags["error"]
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert parent.info.status == "FAILED" and parent.data.tags["jobs.failed"] == "1"


def test_parallel_processes_create_one_store(tmp_path):
    """MLflow alone fails here (`table ... already exists`): ser_bench creates the store under a lock."""
    code = ("import sys; from ser_bench.tracking import ensure_experiment; "
            f"print(ensure_experiment('sqlite:///{tmp_path}/race.db', 'x'))")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    assert {out.strip().splitlines()[-1] for out, _ in outs} == {"1"}
