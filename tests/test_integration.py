"""How ser_bench fits Hydra, Lightning and MLflow: any Trainer flag, logger and callback groups, debug=fast, one
result key (pinned, path spellings, legacy runs still resume), corpora made of links, the utterance fallback."""

from __future__ import annotations

import dataclasses
import os

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ser_bench import result_key, settings, tracking, train
from ser_bench.data import ravdess, splits
from ser_bench.errors import UserError

from .conftest import compose_cfg, tiny_overrides, write_wav
from .test_cli import cli

BASE = ["paths.output_dir=/tmp/out", "tracking.uri=sqlite:////tmp/h/mlflow.db", "cache_dir=/tmp/cache"]
# (overrides, hash, legacy hash). The legacy column is what the code before ser_bench.result_key tagged runs
# with (computed by that commit, 69b049e): legacy_hash must keep reproducing it, or stores stop resuming.
PINNED = [
    ([], "be62da31d88a769d", "30290a6de75274f7"),
    (["model=resnet2d", "augment=speed_pitch"], "c20cea01aa251571", "5f33175badf9ed5c"),
    (["data=ravdess", "data.root=/data/ravdess", "split.fold=3"], "6be6b6f9eb9194ae", "1d31848166f273d3"),
    (["experiment=ravdess_resnet2d", "data.root=/data/ravdess"], "5c70016a407a89d6", "df0089216afc7036"),
    (["member=ravdess_cnn1d_ema_seed1", "data.root=/data/ravdess"], "598ae284bf17e176", "5ca926e95160d255"),
]


@pytest.mark.parametrize("overrides, new, legacy", PINNED)
def test_pinned_hashes(overrides, new, legacy):
    cfg = compose_cfg([*BASE, *overrides])
    assert (result_key.config_hash(cfg), result_key.legacy_hash(cfg)) == (new, legacy)


def test_one_spelling_per_path_and_what_is_in_or_out(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    spellings = [str(tmp_path / "real"), f"{tmp_path}/real/", str(tmp_path / "link"), f"{tmp_path}/real/../real"]
    hashes = {result_key.config_hash(compose_cfg([*BASE, "data=ravdess", f"data.root={p}"])) for p in spellings}
    assert len(hashes) == 1
    home = os.path.expanduser("~")
    assert result_key.normal_path("~") == os.path.realpath(home)
    assert result_key.normal_path("facebook/wav2vec2-base/") == "facebook/wav2vec2-base"  # a hub id stays
    base = result_key.config_hash(compose_cfg(BASE))
    for unchanged in ("tracking.experiment=other", "cache_dir=/elsewhere", "logger=csv", "resume=false",
                      "trainer.enable_progress_bar=false", "paths.output_dir=/x"):
        assert result_key.config_hash(compose_cfg([*BASE, unchanged])) == base, unchanged
    for changed in ("cache_log_mel=false", "loader.num_workers=2", "callbacks=timer", "++trainer.fast_dev_run=true",
                    "split.val=utterances"):
        assert result_key.config_hash(compose_cfg([*BASE, changed])) != base, changed
    # cache_log_mel means nothing to a model without a log-mel
    ssl = ["model=wav2vec2"]
    assert result_key.config_hash(compose_cfg([*BASE, *ssl])) == \
        result_key.config_hash(compose_cfg([*BASE, *ssl, "cache_log_mel=false"]))
    assert set(result_key.IGNORED).isdisjoint(result_key.KEPT)


def test_a_run_tagged_by_the_legacy_rule_still_resumes(make_cfg):
    """A FINISHED run as the earlier code logged it (its hash tag, its cache_log_mel param) is found for the same
    configuration, and not for the one setting that rule could not tell apart."""
    cfg = make_cfg()
    uri = cfg.tracking.uri
    experiment = tracking.ensure_experiment(uri, cfg.tracking.experiment)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment, tags={"config_hash": result_key.legacy_hash(cfg)}) as old:
        mlflow.log_params(tracking.flatten(cfg))
    assert tracking.finished_run(cfg).info.run_id == old.info.run_id
    assert tracking.finished_run(make_cfg("cache_log_mel=false")) is None
    assert tracking.finished_run(make_cfg("model.optim.lr=0.01")) is None
    assert result_key.legacy_hash(make_cfg("callbacks=timer")) is None  # no legacy run had callbacks


def test_lightning_flags_loggers_and_callbacks_from_the_command_line(cache_dir, tmp_path):
    proc = cli(*tiny_overrides(cache_dir, tmp_path), f"hydra.run.dir={tmp_path}/run", "trainer.max_epochs=3",
               "trainer.limit_train_batches=2", "logger=csv", "callbacks=[lr_monitor,model_summary]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "val/ua" in metrics[0] and "lr-AdamW" in metrics[0]
    assert len([m for m in metrics[1:] if m.split(",")[metrics[0].split(",").index("val/ua")]]) == 3  # 3 epochs
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("ser_bench").experiment_id])
    assert run.data.params["trainer.limit_train_batches"] == "2" and run.data.metrics["epochs"] == 3
    assert "Total params" in proc.stdout + proc.stderr  # ModelSummary printed


@pytest.mark.parametrize("split", ["split=emobox split.fold=5", "split=loso split.fold=23", "split=random"])
def test_debug_fast_fits_every_split(split):
    cfg = compose_cfg([*BASE, "debug=fast", *split.split()])
    settings.check_corpus_fits(cfg)
    assert cfg.trainer.max_epochs == 1 and cfg.tracking.experiment == "debug" and cfg.data.statements == 1
    with pytest.raises(UserError, match="debug=fast"):
        settings.check_corpus_fits(compose_cfg([*BASE, "data.n_actors=12", "split.fold=0"]))


def test_actor_folders_that_are_links_are_followed(tmp_path):
    store = tmp_path / "store"
    for actor in (1, 2, 3):
        write_wav(store / f"Actor_{actor:02d}" / f"03-01-05-01-01-01-{actor:02d}.wav", actor=actor, emotion=5,
                  sample_rate=16_000)
    root = tmp_path / "ravdess"
    (root / "Actor_01").mkdir(parents=True)
    (store / "Actor_01" / "03-01-05-01-01-01-01.wav").rename(root / "Actor_01" / "03-01-05-01-01-01-01.wav")
    (root / "Actor_02").symlink_to(store / "Actor_02")  # a linked folder
    (root / "Actor_03").mkdir()
    (root / "Actor_03" / "03-01-05-01-01-01-03.wav").symlink_to(store / "Actor_03" / "03-01-05-01-01-01-03.wav")
    (root / "Actor_02" / "loop").symlink_to(root)  # a cycle is walked once
    manifest = ravdess.scan(root)
    assert sorted(u.actor for u in manifest) == [1, 2, 3]


def test_two_speakers_train_on_one_test_on_the_other(tiny_manifest):
    """The TESS case: too few speakers for validation actors; split.val=utterances holds out clips instead."""
    two = [u for u in tiny_manifest if u.actor in (1, 2)] * 2  # 2 speakers, 16 clips each
    two = [dataclasses.replace(u, utt_id=f"{u.utt_id}-{i}") for i, u in enumerate(two)]
    with pytest.raises(UserError, match="split.val=utterances"):
        splits.loso(two, fold=1, n_val_actors=1)
    split = splits.loso(two, fold=1, val="utterances")
    assert split.test_actors == [2] and split.train_actors == split.val_actors == [1]
    assert split.val_by == "utterances" and "not speaker-independent" in split.note and not split.leaky
    assert {two[r].actor for r in split.val} == {1} and len(split.val) >= 1


def test_utterance_validation_is_tagged(make_cfg):
    result = train.run(make_cfg("split=loso", "split.val=utterances", "trainer.max_epochs=1"))
    run = MlflowClient(result["tracking_uri"]).get_run(result["run_id"])
    assert run.data.tags["split.val"] == "utterances" and "not speaker-independent" in run.data.tags["split.note"]
    assert result["split"]["val_by"] == "utterances"


def test_the_corpus_is_the_runs_input_dataset(make_cfg):
    result = train.run(make_cfg("trainer.max_epochs=1"))
    run = MlflowClient(result["tracking_uri"]).get_run(result["run_id"])
    inputs = {d.tags[0].value if d.tags else "": d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "test"}
    assert inputs["test"].name == "synthetic-test" and len(inputs["test"].digest) == 16
    assert '"num_rows": 32' in inputs["test"].profile  # 4 test actors x 8 clips
    again = train.run(make_cfg("trainer.max_epochs=1", "seed=1"))  # the same corpus: the same digests
    other = MlflowClient(result["tracking_uri"]).get_run(again["run_id"])
    assert {d.dataset.digest for d in other.inputs.dataset_inputs} == {d.digest for d in inputs.values()}


def test_help_describes_the_app():
    proc = cli("--help")
    assert proc.returncode == 0
    for needle in ("actor-disjoint", "logger: csv, mlflow, tensorboard", "debug: fast", "model: cnn1d",
                   "python -m ser_bench.predict --model RUN_ID", "trainer.X=VALUE"):
        assert needle in proc.stdout, needle


def test_a_dataset_inserted_by_a_parallel_job_first_is_linked_on_the_next_try(monkeypatch):
    """Two jobs of a sweep can both find a dataset missing and insert it; the second insert fails on the store's
    unique key (seen in a joblib sweep on SQLite), and the next try links the row the other job wrote."""
    from mlflow.exceptions import MlflowException

    calls = []

    def log_input(dataset, context):
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, ...")

    monkeypatch.setattr(mlflow, "log_input", log_input)
    tracking._log_input("dataset", "train")
    assert calls == ["train", "train"]

    def broken(dataset, context):
        raise MlflowException("something else")

    monkeypatch.setattr(mlflow, "log_input", broken)
    with pytest.raises(MlflowException, match="something else"):
        tracking._log_input("dataset", "train")
