"""The streaming engine and the terminal view: predict's timeline fed in chunks, voice activity, smoothing and
abstention, bad input, and `python -m ser_bench.live` on a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from ser_bench.bench.predict import fresh_model
from ser_bench.data import synthetic
from ser_bench.errors import UserError
from ser_bench.inference.timeline import score
from ser_bench.live.engine import NO_SPEECH, Engine
from ser_bench.live.model import load

from .conftest import ROOT


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return fresh_model("cnn1d", tmp_path_factory.mktemp("live") / "model")


@pytest.fixture(scope="module")
def model(model_folder):
    return load([str(model_folder)], "sqlite:///unused.db")


def speech_and_silence() -> np.ndarray:
    """Two synthetic utterances (2 s each), 3 s of silence, two more: what a VAD must tell apart."""
    said = [synthetic.synthesize(actor, emotion, 1, 1, 1, seed=0) for actor, emotion in ((1, 5), (2, 3), (3, 5),
                                                                                          (4, 3))]
    silence = np.zeros(3 * synthetic.SR, np.float32)
    return np.concatenate([said[0], said[1], silence, said[2], said[3]]).astype(np.float32)


def run_engine(engine: Engine, wave: np.ndarray, chunk: int, rate: int | None = None) -> list:
    events = []
    for i in range(0, len(wave), chunk):
        events += engine.feed(wave[i:i + chunk], rate)
    return events + engine.flush()


@pytest.mark.parametrize("chunk", [160, 4000, 1_000_000])
def test_a_whole_file_gives_predicts_timeline(model, chunk):
    wave = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 7 + 555)).astype(np.float32)
    (expected,) = score(model, [wave], 3.0, 0.5)
    events = run_engine(Engine(model, window=3.0, hop=0.5, vad="none", smoothing=1, abstain=0.0), wave, chunk)
    assert np.allclose([(e.start, e.end) for e in events], [(a, b) for a, b, _ in expected.windows], atol=1e-9)
    assert np.abs(np.array([e.window for e in events]) - np.array([p for _, _, p in expected.windows])).max() < 1e-6
    short = wave[:16_000 * 2]  # shorter than the window: one event, the whole clip, as predict scores it
    (one,) = run_engine(Engine(model, window=3.0, vad="none", smoothing=1), short, 1000)
    assert (one.start, one.end) == (0.0, 2.0)
    assert np.allclose(one.window, score(model, [short], 3.0, 0.5)[0].probabilities, atol=1e-6)


def test_any_rate_and_channel_count(model):
    """A 44.1 kHz stereo stream, resampled as it streams, agrees with the same audio at 16 kHz."""
    import soxr

    mono16 = speech_and_silence()
    stereo44 = np.stack([soxr.resample(mono16, 16_000, 44_100)] * 2, axis=1)
    a = run_engine(Engine(model, vad="none", smoothing=1), mono16, 1600)
    b = run_engine(Engine(model, vad="none", smoothing=1), stereo44, 4410, 44_100)
    assert [(e.start, e.end) for e in a][:-1] == [(e.start, e.end) for e in b][:len(a) - 1]
    assert np.abs(np.array([e.window for e in a[:-2]]) - np.array([e.window for e in b[:len(a) - 2]])).max() < 0.02


def test_silence_is_no_speech_and_speech_gets_an_emotion(model):
    wave = speech_and_silence()
    events = run_engine(Engine(model, vad="silero"), wave, 1600)
    labels = {round(e.start, 1): e.label for e in events}
    assert labels[4.5] == NO_SPEECH  # 4.5-7.5 s lies in the silence (4-7 s) but for half a second
    assert all(e.probabilities == {} and e.confidence == 0 for e in events if e.label == NO_SPEECH)
    spoken = [e for e in events if e.end <= 4.0 or e.start >= 7.0]
    assert spoken and all(e.label != NO_SPEECH for e in spoken)
    noise = (0.1 * np.random.default_rng(1).standard_normal(16_000 * 5)).astype(np.float32)
    assert {e.label for e in run_engine(Engine(model, vad="silero"), noise, 1600)} == {NO_SPEECH}  # not a voice


def test_smoothing_and_abstention(model):
    wave = speech_and_silence()
    raw = run_engine(Engine(model, vad="none", smoothing=1, abstain=0.0), wave, 1600)
    smooth = run_engine(Engine(model, vad="none", smoothing=3, abstain=0.0), wave, 1600)
    for i in range(2, len(raw)):
        mean = np.mean([raw[j].window for j in (i - 2, i - 1, i)], axis=0)
        assert np.allclose(list(smooth[i].probabilities.values()), mean, atol=1e-9)
    never_sure = run_engine(Engine(model, vad="none", abstain=1.0), wave, 1600)
    assert {e.label for e in never_sure} == {"uncertain"}


def test_bad_streams_are_one_line(model, model_folder, tmp_path):
    with pytest.raises(UserError, match="takes 8000-192000 Hz"):
        Engine(model, vad="none").feed(np.zeros(100), 4000)
    engine = Engine(model, vad="none")
    engine.feed(np.zeros(100), 16_000)
    with pytest.raises(UserError, match="changed its sample rate"):
        engine.feed(np.zeros(100), 48_000)
    with pytest.raises(UserError, match="non-finite"):
        Engine(model, vad="none").feed(np.array([0.0, np.nan]), 16_000)
    uncalibrated = tmp_path / "m"
    uncalibrated.mkdir()
    for f in model_folder.iterdir():
        (uncalibrated / f.name).write_bytes(f.read_bytes())
    meta = json.loads((uncalibrated / "ser_model.json").read_text())
    (uncalibrated / "ser_model.json").write_text(json.dumps({**meta, "temperature": 1.0, "calibrated": False}))
    with pytest.raises(UserError, match="has no calibration.*--rebuild"):
        load([str(uncalibrated)], "sqlite:///unused.db")


def live(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_bench.live", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_terminal_view_on_a_file(model_folder, tmp_path):
    path = tmp_path / "talk.wav"
    sf.write(path, speech_and_silence(), 16_000)
    out = tmp_path / "events.jsonl"
    start = time.monotonic()
    proc = live("--model", str(model_folder), "--input", str(path), "--realtime", "--seconds", "2", "--out", str(out))
    paced = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test UA" in proc.stdout and "updates:" in proc.stdout
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events and events[-1]["end"] == pytest.approx(2.0)
    assert paced > 1.5  # 2 s of audio at real-time pace
    full = live("--model", str(model_folder), "--input", str(path), "--out", str(out))
    assert full.returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = run_engine(Engine(load([str(model_folder)], "sqlite:///unused.db")), speech_and_silence(), 8000)
    assert [e["label"] for e in lines] == [e.label for e in expected]


@pytest.mark.parametrize("args, needle", [
    (["--input", "missing.wav"], "cannot read audio file"),
    (["--realtime"], "--realtime paces a file"),
    (["--abstain", "2", "--input", "x.wav"], "--abstain 2.0"),
    ([], "no microphone"),  # no PortAudio on a test machine, or no input device
])
def test_bad_input_is_one_line(model_folder, tmp_path, args, needle):
    proc = live("--model", str(model_folder), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_an_unknown_model_is_one_line(tmp_path):
    proc = live("--model", "0123456789abcdef0123456789abcdef", "--input", "x.wav",
                "--tracking-uri", f"sqlite:///{tmp_path}/none.db", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1
