"""One command for an ensemble: the members of conf/ensemble/ are the named experiments they claim to be, and a
sweep with EnsembleCallback scores its runs as one ensemble, the same figure computed here from the runs' files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from sklearn.metrics import balanced_accuracy_score

from ser_bench.ensemble import EnsembleCallback
from ser_bench.result_key import config_hash
from ser_bench.tracking import flatten

from .conftest import CONF, compose_cfg, tiny_overrides
from .test_cli import cli

ENSEMBLES = sorted(p.stem for p in (CONF / "ensemble").glob("*.yaml"))
MEMBERS = sorted(p.stem for p in (CONF / "member").glob("*.yaml"))
CALLBACK = "+hydra.callbacks.ensemble._target_=ser_bench.ensemble.EnsembleCallback"


def _as_experiment(member: str) -> list[str]:
    """What a member file says it is, read from its own defaults and keys: experiment=NAME plus its values."""
    raw = OmegaConf.load(CONF / "member" / f"{member}.yaml")
    (override,) = [d for d in raw.defaults if not isinstance(d, str)]
    experiment = override["override /experiment"]
    values = OmegaConf.create({k: v for k, v in OmegaConf.to_container(raw).items() if k != "defaults"})
    return [f"experiment={experiment}", *(f"{k}={v}" for k, v in flatten(values).items())]


@pytest.mark.parametrize("member", MEMBERS)
def test_a_member_is_its_experiment_with_the_same_config_hash(member, tmp_path):
    """Same hash: runs logged by the plain experiment command are members already (the sweep skips them)."""
    common = ["data.root=/data/ravdess", f"paths.output_dir={tmp_path}"]
    as_member = compose_cfg([f"member={member}", *common])
    plain = compose_cfg([*_as_experiment(member), *common])
    assert config_hash(as_member) == config_hash(plain)
    assert as_member.data.corpus != "synthetic" and as_member.model.name == plain.model.name


@pytest.mark.parametrize("name", ENSEMBLES)
def test_an_ensemble_names_existing_members_and_composes_with_each(name, tmp_path):
    raw = OmegaConf.load(CONF / "ensemble" / f"{name}.yaml")
    members = str(raw.hydra.sweeper.params.member).split(",")
    assert len(members) >= 2 and set(members) <= set(MEMBERS)
    assert raw.hydra.callbacks.ensemble._target_ == "ser_bench.ensemble.EnsembleCallback"
    for member in members:
        cfg = compose_cfg([f"ensemble={name}", f"member={member}", "data.root=/data/ravdess",
                           f"paths.output_dir={tmp_path}"])
        alone = compose_cfg([f"member={member}", "data.root=/data/ravdess", f"paths.output_dir={tmp_path}"])
        assert config_hash(cfg) == config_hash(alone)  # the ensemble config adds nothing to a member's result


def _probabilities(client: MlflowClient, run_id: str) -> tuple[list[str], dict[str, tuple[str, np.ndarray]]]:
    with open(client.download_artifacts(run_id, "predictions.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [k[2:] for k in rows[0] if k.startswith("p_")]
    return classes, {r["utt_id"]: (r["true"], np.array([float(r[f"p_{c}"]) for c in classes])) for r in rows}


def test_a_sweep_with_the_callback_scores_its_runs_as_one_ensemble(cache_dir, tmp_path, capsys):
    proc = cli("-m", "augment=none,noise", "seed=0,1", "split.fold=0", CALLBACK, *tiny_overrides(cache_dir, tmp_path),
               "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "# Ensemble: cnn1d + noise & cnn1d + none" in proc.stdout and "4 trainings per fold" in proc.stdout
    assert (tmp_path / "sweep" / "ensemble.md").read_text() in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("ser_bench").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # Independently: each augmentation's two seeds averaged, then the two settings, then UA.
    per_setting, columns = {}, set()
    for r in children:
        classes, probs = _probabilities(client, r.info.run_id)
        columns.add(tuple(classes))
        per_setting.setdefault(r.data.tags["augment"], []).append(probs)
    assert sorted(per_setting) == ["noise", "none"] and all(len(v) == 2 for v in per_setting.values())
    (classes,) = columns
    clips = sorted(per_setting["none"][0])
    mean = np.mean([[np.mean([seed[u][1] for seed in seeds], axis=0) for u in clips]
                    for seeds in per_setting.values()], axis=0)
    truth = [classes.index(per_setting["none"][0][u][0]) for u in clips]
    expected = balanced_accuracy_score(truth, mean.argmax(1))
    assert parent.data.metrics["ensemble/test/ua"] == pytest.approx(expected, abs=1e-9)
    assert parent.data.tags["ensemble.trainings_per_fold"] == "4"
    assert "ensemble.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert parent.info.status == "FINISHED"

    # Scored from the experiment the jobs logged to (their result.json), whatever the launching config names.
    elsewhere = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}},
                                  "tracking": {"experiment": "not-where-the-jobs-logged"}})
    EnsembleCallback().on_multirun_end(elsewhere)
    out = capsys.readouterr()
    assert "# Ensemble: cnn1d + noise & cnn1d + none" in out.out and "not scored" not in out.err


def test_an_ensemble_with_a_failed_member_is_not_scored(cache_dir, tmp_path):
    proc = cli("-m", "trainer.gradient_clip_val=5,bogus", CALLBACK, *tiny_overrides(cache_dir, tmp_path),
               "trainer.max_epochs=1", "split.fold=0", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 1
    assert "ensemble not scored: 1 of 2 jobs failed" in proc.stderr
    assert not (tmp_path / "sweep" / "ensemble.md").exists()
