"""DDP runs (trainer.strategy=ddp trainer.devices=2, gloo on CPU) through the real CLI: one MLflow run from rank 0,
every validation and test clip evaluated once across the ranks, the same numbers as one process where the
arithmetic is the same, and a failing rank a FAILED run and one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ser_bench import predict
from ser_bench.data.datamodule import EpochSampler, SERDataModule
from ser_bench.data.manifest import label_ids
from ser_bench.data.splits import emobox
from ser_bench.data.synthetic import EMOTIONS
from ser_bench.distributed import Shard
from ser_bench.errors import UserError
from ser_bench.tracking import ensure_experiment

from .conftest import ROOT, TINY_CORPUS, finished_and_failed, tiny_overrides
from .test_cli import cli
from .test_hardening import _statuses, _wait_for, ctrl_c_as_in_a_terminal

DDP = ["trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]


def test_evaluation_shards_cover_every_clip_once_in_order():
    for n, world in ((15, 2), (16, 2), (7, 3), (5, 5)):
        shards = [list(Shard(n, rank, world)) for rank in range(world)]
        assert sum(shards, []) == list(range(n))  # joined in rank order: every row once, in order (distributed.gather)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(UserError, match="3 validation clips for 4 DDP processes"):
        Shard(3, 0, 4, "validation")


def test_online_augmentation_epochs_are_shared_out_between_ranks():
    single = EpochSampler(15, seed=1)
    ranks = [EpochSampler(15, seed=1, rank=r, world=2) for r in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(3)
    order = [i for i, _ in single]
    parts = [list(r) for r in ranks]
    assert [len(p) for p in parts] == [8, 8] == [len(r) for r in ranks]  # as many batches on each rank
    assert [i for i, _ in parts[0]] == order[0::2] and [i for i, _ in parts[1]] == order[1::2] + order[:1]
    assert {e for p in parts for _, e in p} == {3}  # the epoch travels with every index: the augmentation's seed


def test_each_rank_loads_its_own_part(tiny_manifest, cache_dir):
    from ser_bench.data.cache import load_waveforms

    split = emobox(tiny_manifest, fold=0)
    waves = load_waveforms([u.path for u in tiny_manifest], cache_dir)
    loaders = []
    for rank in range(2):
        dm = SERDataModule(waves, label_ids(tiny_manifest, EMOTIONS), split, batch_size=5)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        loaders.append((dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()))
    for part, rows in ((1, split.val), (2, split.test)):
        seen = [r for loader in (loaders[0][part], loaders[1][part]) for batch in loader for r in batch["row"].tolist()]
        assert seen == list(rows)  # each evaluation clip once, the ranks' parts in order
    train = [{r for batch in loaders[rank][0] for r in batch["row"].tolist()} for rank in range(2)]
    assert train[0] | train[1] == set(split.train) and len(train[0] & train[1]) <= 1  # padding repeats at most one


def _runs(uri: str):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("ser_bench").experiment_id],
                                      order_by=["attributes.start_time ASC"])


def _csv(client: MlflowClient, run, name: str, tmp_path) -> pd.DataFrame:
    return pd.read_csv(client.download_artifacts(run.info.run_id, name, str(tmp_path))).set_index("utt_id")


def test_ddp_equals_one_process_where_the_arithmetic_is_the_same(cache_dir, tmp_path, tiny_pretrained):
    """A frozen encoder's cached features and a head without dropout, trained on the whole training set as one batch:
    one process takes the mean gradient over all clips, two ranks the mean of their halves' means, all-reduced. Only
    the order of float additions differs, so the curves and the test probabilities agree to float32 rounding (1e-5),
    and the test metrics exactly."""
    args = [*tiny_overrides(cache_dir, tmp_path), "model=wav2vec2", f"model.pretrained={tiny_pretrained['wav2vec2']}",
            "model.net.dropout=0", "loader.batch_size=256", "trainer.max_epochs=6", "model.optim.lr=0.01"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for extra, name in (([], "single"), (DDP, "ddp")):
        proc = cli(*args, *extra, f"hydra.run.dir={tmp_path}/{name}", cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(cwd.iterdir())  # no rank fell back to MLflow's default store (./mlflow.db, ./mlruns)
    assert "DDP: 2 ranks (torch elastic, gloo)" in proc.stdout and "Starting with 2 processes" in proc.stdout
    client, runs = _runs(f"sqlite:///{tmp_path}/mlflow.db")
    assert len(runs) == 2  # one per command: rank 1 opened none
    single, ddp = runs
    assert ddp.data.params["trainer.devices"] == "2" and ddp.data.tags["config_hash"] != single.data.tags["config_hash"]
    for key in ("val/ua", "val/loss", "train/loss"):
        curves = [[m.value for m in client.get_metric_history(r.info.run_id, key)] for r in runs]
        np.testing.assert_allclose(curves[1], curves[0], atol=1e-5)
    assert len(curves[0]) == 6
    for key in ("test/ua", "test/wa", "test/macro_f1", "best/val_ua"):
        assert ddp.data.metrics[key] == single.data.metrics[key], key
    for name in ("predictions.csv", "val_predictions.csv"):
        a, b = (_csv(client, r, name, tmp_path / r.info.run_id) for r in runs)
        assert b.index.is_unique and list(b.index) == list(a.index)  # every clip once, in the same order
        probs = [c for c in a.columns if c.startswith("p_")]
        np.testing.assert_allclose(b[probs].to_numpy(), a[probs].to_numpy(), atol=1e-5)


def test_ddp_sweep_ranks_test_one_network_and_a_failing_job_is_one_line(cache_dir, tmp_path, capsys):
    """cnn1d (batch norm, dropout) on an odd number of validation clips with a batch size that gives the ranks
    different numbers of batches: the logged validation and test probabilities are those of the tested checkpoint,
    applied to each clip in one process, so every rank evaluated the same network and each clip once. In the same
    sweep a diverging job ends FAILED with one line, and the sweep goes on (its launcher started DDP twice)."""
    args = ["-m", "model.optim.lr=0.003,1e30", *tiny_overrides(cache_dir, tmp_path, corpus=False), "data=tiny",
            "data.intensities=[1,2]", "split.n_val_actors=1", "loader.batch_size=7", "trainer.max_epochs=1", *DDP,
            f"hydra.sweep.dir={tmp_path}/sweep"]
    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 finished, 0 skipped (already FINISHED), 1 failed" in proc.stdout
    diverged = r"^error: job 1 \(model.optim.lr=1e\+30\): .* = nan at epoch 0: training diverged"
    assert re.search(diverged, proc.stderr, re.M)
    assert "Traceback" not in proc.stderr
    client, exp, parent, jobs = finished_and_failed(tmp_path)
    assert len(client.search_runs([exp])) == 3  # the parent and one run per job: no rank but 0 opened one
    assert "training diverged" in jobs["1e+30"].data.tags["error"]
    run = jobs["0.003"]
    by_id = {u.utt_id: u.path for u in _tiny_with_strong(cache_dir)}
    for name, clips in (("val_predictions.csv", 15), ("predictions.csv", 60)):
        logged = _csv(client, run, name, tmp_path / name)
        assert len(logged) == clips and logged.index.is_unique
        out = tmp_path / f"{name}.out.csv"
        code = predict.main(["--model", run.info.run_id, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                             "--uncalibrated", "--out", str(out), *(str(by_id[u]) for u in logged.index)])
        assert code == 0, capsys.readouterr().err
        again = pd.read_csv(out)
        probs = [c for c in logged.columns if c.startswith("p_")]
        np.testing.assert_allclose(again[probs].to_numpy(), logged[probs].to_numpy(), atol=2e-4)


def _tiny_with_strong(cache_dir):
    from ser_bench.data import synthetic

    return synthetic.load(cache_dir, seed=0, intensities=[1, 2], statements=1, repetitions=1)


@pytest.mark.slow  # ~1 min: two DDP runs stopped by a signal
@pytest.mark.parametrize("sig, group, code, error", [(signal.SIGINT, True, 130, "interrupted"),
                                                     (signal.SIGTERM, False, 143, "terminated (SIGTERM)")],
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_every_rank_and_closes_the_run(sig, group, code, error, cache_dir, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGTERM to the launching process alone (as a
    launcher or a scheduler sends it): torch's launcher passes it to the ranks, rank 0 closes the run KILLED, and no
    rank is left running."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_experiment(uri, "ser_bench")
    args = [sys.executable, "-m", "ser_bench", *TINY_CORPUS, f"cache_dir={cache_dir}", f"tracking.uri={uri}",
            "trainer.max_epochs=400", "early_stopping.patience=0", "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path}/run", *DDP]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        _wait_for(lambda: "RUNNING" in _statuses(uri).values(), 300, "the run did not start")
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err[-2000:]
    client, (run,) = _runs(uri)
    assert run.info.status == "KILLED" and run.data.tags["error"] == error
    job = str(tmp_path / "run" / "ranks" / "job.pkl")
    _wait_for(lambda: subprocess.run(["pgrep", "-f", job], capture_output=True).returncode == 1, 30,
              "a rank outlived the run")
