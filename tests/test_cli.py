"""The real command line in a subprocess: a single run and one-line user errors (sweeps: test_sweep.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score

from ser_bench import train
from ser_bench.errors import UserError

from .conftest import CONF, ROOT, compose_cfg, tiny_overrides

ARTIFACTS = {"config.yaml", "split.json", "curves.png", "confusion_matrix.png", "confusion_matrix.csv",
             "predictions.csv", "val_predictions.csv", "checkpoints"}
TAGS = ("model", "augment", "split", "fold", "seed", "corpus", "git_commit", "config_hash", "actors.test")


def cli(*args: str, cwd=ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ser_bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _finished_runs(uri: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ser_bench")
    return client, client.search_runs([exp.experiment_id], order_by=["start_time ASC"])


def test_single_run(cache_dir, tmp_path):
    proc = cli(*tiny_overrides(cache_dir, tmp_path), f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test  UA" in proc.stdout and "mlflow ui --backend-store-uri" in proc.stdout
    client, runs = _finished_runs(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = runs
    assert run.info.status == "FINISHED"
    for tag in TAGS:
        assert run.data.tags[tag], tag
    assert run.data.tags["actors.test"] == "1 11 20 21"
    assert {"test/ua", "test/wa", "test/macro_f1", "best/gap_acc"} <= set(run.data.metrics)
    assert ARTIFACTS <= {a.path for a in client.list_artifacts(run.info.run_id)}
    predictions = client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path))
    lines = open(predictions).read().splitlines()
    assert lines[0].startswith("utt_id,actor,true,pred,p_neutral")
    assert len(lines) == 1 + 4 * 8  # 4 test actors x 8 clips
    assert {line.split(",")[1] for line in lines[1:]} == {"1", "11", "20", "21"}
    # The validation clips through the best checkpoint: their UA is the best epoch's validation UA.
    val = pd.read_csv(client.download_artifacts(run.info.run_id, "val_predictions.csv", str(tmp_path)))
    assert set(val["actor"].astype(str)) == set(run.data.tags["actors.val"].split())
    assert balanced_accuracy_score(val["true"], val["pred"]) == pytest.approx(run.data.metrics["best/val_ua"], abs=1e-6)


def _one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]


def test_user_errors_are_one_line(cache_dir, tmp_path):
    base = [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.run.dir={tmp_path}/run",
            f"cache_dir={cache_dir}"]
    _one_line_error(cli("data=ravdess", f"data.root={tmp_path}/missing", *base), "is not a folder")
    bad = tmp_path / "bad" / "Actor_01"
    bad.mkdir(parents=True)
    (bad / "hello.wav").write_bytes(b"RIFF")
    _one_line_error(cli("data=ravdess", f"data.root={tmp_path}/bad", *base), "hello.wav")


@pytest.mark.parametrize("overrides, needle", [
    (["data=ravdess"], "needs data.root=PATH"),
    (["split.fold=9"], "folds 0-5"),
    (["model.net.frontend.norm=cepstral"], "bad model.net settings"),
    (["eval_data=synthetic"], "add split=cross"),
    (["split=cross"], "needs the corpus to test on"),
    (["split=cross", "eval_data=synthetic"], "also a training corpus"),
    (["split=cross", "eval_data=tess"], "needs eval_data.root=PATH"),
    (["labels=ekman6"], "not a label set"),
    (["split=manifest"], "use it with data=manifest"),
    (["data=manifest", "data.root=/tmp"], "needs data.metadata=PATH"),
])
def test_user_errors_in_process(make_cfg, overrides, needle):
    """The same UserError path the CLI prints, without paying a subprocess start-up per case."""
    with pytest.raises(UserError, match=needle):
        train.run(make_cfg(*overrides))


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF.glob("experiment/*.yaml")))
def test_named_experiments_compose_over_the_defaults(name):
    base, cfg = compose_cfg([]), compose_cfg([f"experiment={name}"])
    assert cfg.tracking.experiment != base.tracking.experiment  # each recipe logs to its own experiment
    assert cfg.data.corpus != "synthetic"  # a recipe names the corpus it was measured on
