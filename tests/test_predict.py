"""`python -m ser_bench.predict` on runs trained here: the run's own test probabilities reproduced, ensembles,
timelines, abstention, and one clear line for every bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from ser_bench import predict
from ser_bench.inference import bundle, sources, timeline

from .conftest import FAST_CREPE, ROOT, write_wav


def run_predict(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before (a training's progress bars) is not predict's
    code = predict.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def logged_rows(uri: str, run_id: str, name: str = "predictions.csv") -> list[dict]:
    path = MlflowClient(uri).download_artifacts(run_id, name)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def clip_paths(tiny_manifest, rows: list[dict]) -> list[Path]:
    by_id = {u.utt_id: u.path for u in tiny_manifest}
    return [by_id[r["utt_id"]] for r in rows]


def read_out(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("overrides", [(), ("model.optim.ema=0.9", "cache_log_mel=false", "model=resnet2d"),
                                       ("model=egemaps_svm",), ("model=ge2e",),
                                       ("model=ge2e", "model.net.standardize=true"), ("model=crepe", FAST_CREPE)],
                         ids=["cnn1d", "resnet2d-ema-uncached", "egemaps_svm", "ge2e", "ge2e-standardized", "crepe"])
def test_predict_reproduces_the_runs_test_probabilities(trained, tiny_manifest, capsys, tmp_path, overrides):
    """Uncalibrated, predict gives the clips of the test actors the probabilities the run's test pass logged: the
    tested network (the moving average where there is one) with its preprocessing, rebuilt without the config."""
    run = trained(*overrides)
    rows = logged_rows(trained.uri, run.info.run_id)
    out = tmp_path / "preds.csv"
    code, stdout, err = run_predict(capsys, "--model", run.info.run_id, "--tracking-uri", trained.uri, "--uncalibrated",
                                    "--out", str(out), *map(str, clip_paths(tiny_manifest, rows)))
    assert code == 0, err
    got = read_out(out)
    assert len(got) == len(rows) and all(g["segment"] == "clip" for g in got)
    names = [k[2:] for k in rows[0] if k.startswith("p_")]
    expected = np.array([[float(r[f"p_{c}"]) for c in names] for r in rows])
    probs = np.array([[float(g[f"p_{c}"]) for c in names] for g in got])
    np.testing.assert_allclose(probs, expected, atol=2e-4)
    assert [g["emotion"] for g in got] == [r["pred"] for r in rows]
    assert "emotion" in stdout and Path(got[0]["file"]).name in stdout


def test_calibrated_probabilities_use_the_validation_temperature(trained, tiny_manifest, capsys, tmp_path):
    run = trained()
    temperature = run.data.metrics["calibration/temperature"]
    rows = logged_rows(trained.uri, run.info.run_id)[:5]
    out = tmp_path / "p.jsonl"
    assert run_predict(capsys, "--model", run.info.run_id, "--tracking-uri", trained.uri, "--out", str(out),
                       *map(str, clip_paths(tiny_manifest, rows)))[0] == 0
    names = [k[2:] for k in rows[0] if k.startswith("p_")]
    logits = np.log([[float(r[f"p_{c}"]) for c in names] for r in rows]) / temperature
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = np.array([[g[f"p_{c}"] for c in names] for g in read_out(out)])
    np.testing.assert_allclose(got, expected, atol=3e-4)


def test_ensemble_averages_settings_then_seeds(trained, tiny_manifest, capsys, tmp_path):
    a, b, c = (trained(f"seed={s}").info.run_id for s in (0, 1, 2))
    rows = logged_rows(trained.uri, a)[:6]
    files = list(map(str, clip_paths(tiny_manifest, rows)))

    def probs(*models: str) -> np.ndarray:
        out = tmp_path / f"{len(models)}-{models[0][:6]}.csv"
        args = [x for m in models for x in ("--model", m)]
        assert run_predict(capsys, *args, "--tracking-uri", trained.uri, "--out", str(out), *files)[0] == 0
        return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in read_out(out)])

    pa, pb, pc = probs(a), probs(b), probs(c)
    np.testing.assert_allclose(probs(a, b, c), (pa + pb + pc) / 3, atol=2e-4)
    np.testing.assert_allclose(probs(f"{a},{b}", c), ((pa + pb) / 2 + pc) / 2, atol=2e-4)


def test_spans_cover_a_long_clip():
    assert timeline.spans(14, 6, 3) == [(0, 6), (3, 9), (6, 12), (9, 14)]
    assert timeline.spans(12, 6, 3) == [(0, 6), (3, 9), (6, 12)]
    assert timeline.spans(5, 6, 3) == [(0, 5)]
    assert timeline.spans(5, None, None) == [(0, 5)]


def test_long_clip_gets_a_timeline_and_a_whole_clip_answer(trained, capsys, tmp_path):
    run = trained()
    long_clip = tmp_path / "interview.flac"
    write_wav(tmp_path / "a.wav", actor=3, emotion=5, sample_rate=16_000, seconds=14.0)
    wave, rate = sf.read(tmp_path / "a.wav")
    sf.write(long_clip, np.stack([wave, wave * 0.5], 1), rate, format="FLAC")  # stereo FLAC
    out = tmp_path / "t.csv"
    code, _, err = run_predict(capsys, "--model", run.info.run_id, "--tracking-uri", trained.uri, "--window", "4",
                               "--hop", "2", "--abstain", "0.99", "--out", str(out), str(long_clip))
    assert code == 0, err
    rows = read_out(out)
    windows, (whole,) = rows[:-1], rows[-1:]
    assert [(float(r["start"]), float(r["end"])) for r in windows] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12),
                                                                       (10, 14)]
    assert whole["segment"] == "clip" and float(whole["end"]) == pytest.approx(14.0)
    names = [k for k in whole if k.startswith("p_")]
    mean = np.mean([[float(r[k]) for k in names] for r in windows], axis=0)
    np.testing.assert_allclose([float(whole[k]) for k in names], mean, atol=2e-4)
    assert {r["emotion"] for r in rows} == {"uncertain"}  # nothing this tiny model says is 99% sure


def test_local_model_folders(trained, capsys, tmp_path):
    """An MLflow model folder and the bare ser_bench folder inside it both work as --model."""
    import mlflow

    run = trained()
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path),
                                                      tracking_uri=trained.uri))
    clip = tmp_path / "c.wav"
    write_wav(clip, sample_rate=22_050, channels=2)
    answers = []
    for model in (folder, sources.local_folder(folder)):
        code, out, err = run_predict(capsys, "--model", str(model), str(clip))
        assert code == 0, err
        answers.append(out.splitlines()[1].split()[3:])
    assert answers[0] == answers[1]
    meta = bundle.read_meta(sources.local_folder(folder))
    assert meta["source"]["run_id"] == run.info.run_id and meta["source"]["split"] == "emobox"
    assert meta["temperature"] == pytest.approx(run.data.metrics["calibration/temperature"])


def test_frozen_encoder_is_referenced_not_copied(trained, tiny_pretrained, tiny_manifest, capsys, tmp_path):
    import mlflow

    run = trained("model=wav2vec2", f"model.pretrained={tiny_pretrained['wav2vec2']}")
    folder = sources.local_folder(Path(mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path), tracking_uri=trained.uri)))
    meta = bundle.read_meta(folder)
    assert meta["omitted"] and all(k.startswith("encoder.") for k in meta["omitted"])
    from safetensors.torch import load_file

    assert set(load_file(folder / bundle.WEIGHTS)) == {"layer_weights", "head.0.weight", "head.0.bias",
                                                       "head.3.weight", "head.3.bias"}
    rows = logged_rows(trained.uri, run.info.run_id)[:4]
    out = tmp_path / "p.csv"
    assert run_predict(capsys, "--model", str(folder), "--uncalibrated", "--out", str(out),
                       *map(str, clip_paths(tiny_manifest, rows)))[0] == 0
    got = [[float(v) for k, v in r.items() if k.startswith("p_")] for r in read_out(out)]
    np.testing.assert_allclose(got, [[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows], atol=2e-4)


def test_cli_starts_without_lightning(trained, tmp_path):
    """The real command in a fresh process: Lightning is never imported (a one-clip call starts fast)."""
    run = trained()
    clip = tmp_path / "c.wav"
    write_wav(clip)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ser_bench.predict", "--model", run.info.run_id,
                           "--tracking-uri", trained.uri, str(clip)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "ser_bench.inference.scorer" in imported
    assert not [m for m in imported if m.split(".")[0] in ("lightning", "pytorch_lightning")]
    assert clip.name in proc.stdout


def write_garbage(tmp_path: Path) -> dict[str, Path]:
    files = {"empty": tmp_path / "empty.wav", "text": tmp_path / "notes.wav", "corrupt": tmp_path / "cut.wav"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are not samples\n" * 20)
    write_wav(files["corrupt"])
    files["corrupt"].write_bytes(files["corrupt"].read_bytes()[:2000])  # the header promises more
    return files


def test_bad_input_is_one_line_and_writes_nothing(trained, capsys, tmp_path):
    run = trained()
    good = tmp_path / "good.wav"
    write_wav(good)
    out = tmp_path / "never.csv"
    base = ["--tracking-uri", trained.uri, "--out", str(out)]
    empty_dir = tmp_path / "nothing"
    (empty_dir / "sub").mkdir(parents=True)
    (empty_dir / "sub" / "readme.txt").write_text("no audio here")
    cases = {
        "no such file": ["--model", run.info.run_id, str(tmp_path / "missing.wav")],
        "holds no audio files": ["--model", run.info.run_id, str(empty_dir)],
        "no run 0123": ["--model", "0123456789abcdef0123456789abcdef", str(good)],
        "no such folder": ["--model", str(tmp_path / "nope"), str(good)],
        "no registered model 'nobody'": ["--model", "models:/nobody@champion", str(good)],
        "write .csv or .jsonl": ["--model", run.info.run_id, str(good), "--out", str(tmp_path / "x.xlsx")],
        "--abstain 2": ["--model", run.info.run_id, "--abstain", "2", str(good)],
        "--window -1": ["--model", run.info.run_id, "--window", "-1", str(good)],
    }
    for name, path in write_garbage(tmp_path).items():
        cases[f"{path}"] = ["--model", run.info.run_id, str(good), str(path)]
        assert name
    for expected, argv in cases.items():
        code, stdout, err = run_predict(capsys, *base, *argv)
        lines = err.strip().splitlines()
        assert code == 2, (expected, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (expected, err)
        assert not out.exists() and not stdout
    code, _, err = run_predict(capsys, "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--model", run.info.run_id,
                               str(good))
    assert code == 2 and "no MLflow store" in err and not (tmp_path / "none.db").exists()


def test_run_without_a_model_says_how_to_make_one(trained, capsys, tmp_path):
    from ser_bench import export

    run = trained("tracking.log_model=false")
    good = tmp_path / "good.wav"
    write_wav(good)
    code, _, err = run_predict(capsys, "--model", run.info.run_id, "--tracking-uri", trained.uri, str(good))
    assert code == 2 and f"python -m ser_bench.export {run.info.run_id}" in err
    assert export.main([run.info.run_id, "--tracking-uri", trained.uri]) == 0
    assert "from its checkpoint" in capsys.readouterr().out
    client = MlflowClient(trained.uri)
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FINISHED" and after.info.end_time == run.info.end_time
    assert after.data.metrics["calibration/temperature"] > 0
    code, out, err = run_predict(capsys, "--model", run.info.run_id, "--tracking-uri", trained.uri, str(good))
    assert code == 0, err


def test_ensemble_members_must_share_their_classes(trained, capsys, tmp_path):
    good = tmp_path / "good.wav"
    write_wav(good)
    native, four = trained().info.run_id, trained("labels=four").info.run_id
    code, _, err = run_predict(capsys, "--model", native, "--model", four, "--tracking-uri", trained.uri, str(good))
    assert code == 2 and "must share their classes" in err and len(err.strip().splitlines()) == 1


def test_predict_benchmark_starts(tiny_manifest, capsys):
    """Only that it runs end to end on a few clips; the figures come from deliberate runs."""
    from ser_bench.bench.__main__ import main

    root = tiny_manifest[0].path.parents[1]
    main(["predict", "--root", str(root), "--rounds", "1", "--limit", "6", "--cold-rounds", "1"])
    out = capsys.readouterr().out
    assert "ratio predict / bare" in out and "cold predict, run id" in out and "onnxruntime" in out
