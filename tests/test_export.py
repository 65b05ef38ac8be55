"""The run's MLflow model outside ser_bench's own code paths: pyfunc in a fresh process, the registry, `mlflow
models serve`, the model rebuilt from a checkpoint, and ONNX."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from ser_bench import export, predict
from ser_bench.inference import bundle, onnx_export, sources
from ser_bench.inference.scorer import Scorer

from .conftest import ROOT, compose_cfg, write_wav


def predicted(capsys, model: str, uri: str, clip) -> dict[str, float]:
    """predict's whole-clip probabilities for one clip."""
    out = clip.parent / f"{clip.stem}-{abs(hash(model)) % 10_000}.jsonl"
    capsys.readouterr()
    assert predict.main(["--model", model, "--tracking-uri", uri, "--out", str(out), str(clip)]) == 0
    row = json.loads(out.read_text().splitlines()[-1])
    return {k: v for k, v in row.items() if k.startswith("p_")}


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    write_wav(path, actor=7, emotion=5, sample_rate=16_000)
    return path


def test_pyfunc_loads_in_a_fresh_process_without_the_training_code(trained, clip, capsys):
    run = trained()
    code = ("import sys, json, mlflow, soundfile as sf\n"
            f"model = mlflow.pyfunc.load_model('runs:/{run.info.run_id}/model')\n"
            f"wave, rate = sf.read('{clip}', dtype='float32')\n"
            "import pandas as pd\n"
            "out = model.predict(pd.DataFrame({'wave': [wave.tolist()], 'sample_rate': [rate]}))\n"
            "print(json.dumps(out.iloc[0].to_dict()))\n"
            "print('lightning' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=clip.parent, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": trained.uri})
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer, lightning = proc.stdout.strip().splitlines()[-2:]
    assert lightning == "False"
    served = json.loads(answer)
    expected = predicted(capsys, run.info.run_id, trained.uri, clip)
    assert served["emotion"] == max(expected, key=expected.get)[2:]
    np.testing.assert_allclose([served[k] for k in expected], list(expected.values()), atol=1e-4)


def test_register_with_alias_and_tags(trained, clip, capsys):
    run = trained()
    assert export.main([run.info.run_id, "--tracking-uri", trained.uri, "--register", "ser", "--alias",
                        "champion"]) == 0
    client = MlflowClient(trained.uri)
    version = client.get_model_version_by_alias("ser", "champion")
    assert version.tags["run_id"] == run.info.run_id
    assert float(version.tags["test_ua"]) == pytest.approx(run.data.metrics["test/ua"], abs=1e-6)
    assert version.tags["split"] == "emobox" and version.tags["fold"] == "0"
    assert "unseen in training" in version.description
    assert predicted(capsys, "models:/ser@champion", trained.uri, clip) == \
        predicted(capsys, f"models:/ser/{version.version}", trained.uri, clip) == \
        predicted(capsys, run.info.run_id, trained.uri, clip)
    capsys.readouterr()
    assert predict.main(["--model", "models:/ser@gold", "--tracking-uri", trained.uri, str(clip)]) == 2
    assert "has no alias 'gold' (aliases: champion" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_like_predict(trained, clip, capsys):
    run = trained()
    import soundfile as sf

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               f"runs:/{run.info.run_id}/model", "--env-manager", "local", "-h", "127.0.0.1",
                               "-p", str(port)],
                              env={**os.environ, "MLFLOW_TRACKING_URI": trained.uri}, cwd=clip.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not come up in 180 s"
                time.sleep(0.5)
        wave, rate = sf.read(clip, dtype="float32")
        body = {"dataframe_records": [{"wave": wave.tolist(), "sample_rate": rate}], "params": {"abstain": 0.0}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        (answer,) = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
    finally:
        server.terminate()
        server.wait(30)
    expected = predicted(capsys, run.info.run_id, trained.uri, clip)
    np.testing.assert_allclose([answer[k] for k in expected], list(expected.values()), atol=1e-4)
    assert answer["emotion"] == max(expected, key=expected.get)[2:]


def test_model_rebuilt_from_the_checkpoint_matches_the_logged_one(trained, clip, capsys):
    run = trained("model.optim.ema=0.9")
    before = predicted(capsys, run.info.run_id, trained.uri, clip)
    assert export.main([run.info.run_id, "--tracking-uri", trained.uri, "--rebuild"]) == 0
    after = predicted(capsys, run.info.run_id, trained.uri, clip)
    np.testing.assert_allclose(list(after.values()), list(before.values()), atol=1e-6)
    assert len(export.run_models(MlflowClient(trained.uri), run)) == 1  # runs:/ID/model names one model


@pytest.mark.parametrize("model", ["cnn1d", "cnn2d", "resnet2d"])
def test_onnx_matches_pytorch_on_real_clips(model, tiny_manifest, tmp_path):
    from ser_bench.data.audio import read_audio

    torch.manual_seed(0)
    net = instantiate(compose_cfg([f"model={model}"]).model.net, num_classes=8).eval()
    scorer = Scorer(net, [f"c{i}" for i in range(8)], temperature=1.7, tail_samples=256)
    path = onnx_export.export(scorer, tmp_path / f"{model}.onnx")
    clips = [read_audio(u.path) for u in tiny_manifest[::23]]
    assert len({len(c) for c in clips}) > 3  # lengths differ: the graph takes any length
    assert onnx_export.parity(path, scorer, clips) < 1e-4
    sess = onnx_export.session(path)
    batch = np.zeros((2, len(clips[0])), np.float32)  # padded and batched like any batch
    batch[0], batch[1, :len(clips[1][: len(clips[0])])] = clips[0], clips[1][: len(clips[0])]
    lengths = np.array([len(clips[0]), min(len(clips[0]), len(clips[1]))])
    got = sess.run(None, {"wave": batch, "lengths": lengths})[0]
    np.testing.assert_allclose(got, onnx_export.probabilities(sess, [clips[0], clips[1][: lengths[1]]]), atol=1e-5)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == scorer.class_names and float(meta["temperature"]) == 1.7


def test_export_onnx_from_a_run_and_refuse_ssl(trained, tiny_pretrained, tmp_path, capsys):
    run = trained()
    path = tmp_path / "m.onnx"
    assert export.main([run.info.run_id, "--tracking-uri", trained.uri, "--onnx", str(path)]) == 0
    assert "max |difference|" in capsys.readouterr().out and path.stat().st_size > 10_000
    ssl = trained("model=wav2vec2", f"model.pretrained={tiny_pretrained['wav2vec2']}")
    assert export.main([ssl.info.run_id, "--tracking-uri", trained.uri, "--onnx", str(tmp_path / "s.onnx")]) == 2
    err = capsys.readouterr().err
    assert "not exported yet" in err and not (tmp_path / "s.onnx").exists()


def test_export_bad_input(trained, capsys, tmp_path):
    run = trained()
    uri = trained.uri
    cases = {"not a run id": ["abc"], "no run 0123": ["0123456789abcdef0123456789abcdef"],
             "--alias needs --register": [run.info.run_id, "--alias", "x"]}
    for expected, argv in cases.items():
        capsys.readouterr()
        assert export.main([*argv, "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err


def test_model_folder_refuses_foreign_targets(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / bundle.META).write_text(json.dumps({"format": bundle.FORMAT, "version": 1, "class_names": ["a"],
                                                  "net": {"_target_": "os.system", "command": "echo owned"}}))
    with pytest.raises(Exception, match="refusing to build os.system"):
        bundle.load(folder)
    assert sources.local_folder(folder) == folder
    assert not (ROOT / "owned").exists()
