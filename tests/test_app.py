"""The web app: WebSocket streams (four at once, no cross-talk, malformed messages, disconnects) and the page in
Debian's chromium with a fake microphone fed from a WAV file the test writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_bench.live.engine import NO_SPEECH, Engine
from ser_bench.live.model import card, load

from .conftest import compose_cfg, tiny_overrides
from .test_live import run_engine, speech_and_silence

websockets = pytest.importorskip("websockets.sync.client")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(cache_dir, tmp_path_factory):
    """A model as users get one: trained on the tiny corpus, logged by its run (calibrated, with its test UA)."""
    from ser_bench import train

    work = tmp_path_factory.mktemp("app")
    result = train.run(compose_cfg([*tiny_overrides(cache_dir, work), f"paths.output_dir={work}/out"]))
    return result["run_id"], result["tracking_uri"]


@pytest.fixture(scope="module")
def server(trained):
    import uvicorn

    from ser_bench.app.server import MAX_MESSAGE, make_app

    model = load([trained[0]], trained[1])

    def make():  # abstain 0: every speech window shows its top emotion (a 2-epoch model is rarely confident)
        return Engine(model, abstain=0.0)

    app = make_app(model, make, card(model))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws_max_size=2 * MAX_MESSAGE,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{port}/ws", "app": app, "model": model}
    srv.should_exit = True
    thread.join(timeout=10)


def stream(url: str, wave: np.ndarray, rate: int = 16_000, chunk: int = 8000) -> list[dict]:
    with websockets.connect(url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        assert json.loads(ws.recv())["type"] == "started"
        events = []
        for i in range(0, len(wave), chunk):
            ws.send(wave[i:i + chunk].astype("<f4").tobytes())
        ws.send(json.dumps({"type": "stop"}))
        while True:
            msg = json.loads(ws.recv())
            if msg["type"] == "end":
                return events
            events.append(msg)


def test_four_clients_at_once_get_their_own_streams(server):
    base = speech_and_silence()
    waves = [base, base[::-1].copy(), 0.5 * base, np.roll(base, 16_000)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda w: stream(server["ws"], w), waves))
    for wave, events in zip(waves, got):
        expected = run_engine(Engine(server["model"], abstain=0.0), wave, 8000)
        assert [(e["start"], e["label"]) for e in events] == [(round(e.start, 4), e.label) for e in expected]
        assert np.allclose([e["window"] for e in events], [e.window for e in expected], atol=1e-4)
    assert server["app"].state.streams == {}  # every engine freed


def test_malformed_messages_close_that_connection_and_the_server_stays_up(server):
    from websockets.exceptions import ConnectionClosed

    for first, reason in ((b"\x00" * 16, "before audio"), ("not json", "JSON objects"),
                          (json.dumps({"type": "start", "sample_rate": 1000}), "8000-192000 Hz"),
                          (json.dumps({"type": "dance"}), "unexpected message type")):
        with websockets.connect(server["ws"]) as ws:
            ws.send(first)
            assert reason in json.loads(ws.recv())["reason"]
            with pytest.raises(ConnectionClosed):
                ws.recv()
            assert ws.close_code == 1003
    with websockets.connect(server["ws"], max_size=None) as ws:  # too big a message: refused, with the limit
        ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        ws.recv()
        ws.send(np.zeros((1 << 20) // 4 + 1, "<f4").tobytes())
        assert "at most 1048576 bytes" in json.loads(ws.recv())["reason"]
    with websockets.connect(server["ws"]) as ws:  # a client that vanishes mid-stream
        ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        ws.recv()
        ws.send(np.zeros(8000, "<f4").tobytes())
    deadline = time.monotonic() + 10
    while server["app"].state.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server["app"].state.streams == {}
    assert stream(server["ws"], speech_and_silence()[:32_000])  # still serving


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    return path


def test_the_page_in_chromium_with_a_fake_microphone(server, tmp_path):
    """Speech, silence, speech from the fake microphone: the page shows emotions for the speech, `no speech` for the
    silence, and only emotions the engine gives for that audio; a dropped file gives the engine's timeline exactly."""
    sync_api = pytest.importorskip("playwright.sync_api")
    wave = speech_and_silence()
    mic = tmp_path / "mic.wav"
    sf.write(mic, wave, 16_000, subtype="PCM_16")
    pcm16 = sf.read(mic, dtype="float32")[0]  # what the page decodes from the file
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page()
        page.goto(server["url"])
        card_text = page.inner_text("#card")
        assert f"test UA {server['model'].members[0].meta['test_ua']:.3f}" in card_text
        assert "synthetic, emobox fold 0, test actors 1 11 20 21" in card_text
        page.click("#start")
        page.wait_for_function("window.serEvents.filter(e => e.source === 'mic').length >= 24", timeout=60_000)
        page.click("#start")  # stop
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
        shown = page.evaluate("window.serEvents.filter(e => e.source === 'mic').map(e => e.label)")
        page.set_input_files("#file", str(mic))
        page.wait_for_function("window.serFileDone === 'mic.wav'", timeout=60_000)
        dropped = page.evaluate("window.serEvents.filter(e => e.source === 'mic.wav')")
        page.screenshot(path=str(tmp_path / "file.png"), full_page=True)
        blocks = page.eval_on_selector_all("#timeline .ev", "els => els.map(e => e.dataset.label)")
        browser.close()
    engine_labels = {e.label for e in run_engine(Engine(server["model"], abstain=0.0), np.tile(wave, 3), 1600)}
    assert NO_SPEECH in shown and set(shown) - {NO_SPEECH}, shown  # the silence, and emotions for the speech
    assert set(shown) <= engine_labels, (shown, engine_labels)
    expected = run_engine(Engine(server["model"], abstain=0.0), pcm16, 16_000)
    assert [(d["start"], d["label"]) for d in dropped] == [(round(e.start, 4), e.label) for e in expected]
    assert len(blocks) == len(shown) + len(dropped)
    keep = os.environ.get("SER_BENCH_SCREENSHOTS")  # a folder to keep the screenshots in, to look at them
    if keep:
        for name in ("live.png", "file.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)


def test_record_writes_the_stream_only_when_asked(trained, tmp_path):
    """--record DIR keeps each stream's audio; without it nothing is written (the server holds audio in memory)."""
    import uvicorn

    from ser_bench.app.server import make_app

    model = load([trained[0]], trained[1])
    wave = speech_and_silence()[:48_000]
    for record in (None, tmp_path / "rec"):
        app = make_app(model, lambda: Engine(model, vad="none"), card(model), record)
        port = free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        while not srv.started:
            time.sleep(0.05)
        try:
            assert len(stream(f"ws://127.0.0.1:{port}/ws", wave)) == 1
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
    (wav,) = (tmp_path / "rec").glob("*.wav")
    assert np.allclose(sf.read(wav, dtype="float32")[0], wave)
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]


def test_the_app_command_line(tmp_path):
    import subprocess
    import sys

    from ser_bench.app.__main__ import loopback

    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost") and not loopback("0.0.0.0")
    proc = subprocess.run([sys.executable, "-m", "ser_bench.app", "--model", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "no such folder" in proc.stderr


def test_live_benchmark_starts(capsys):
    from ser_bench.bench.__main__ import main

    main(["live", "--nets", "cnn1d", "--seconds", "6"])
    out = capsys.readouterr().out
    assert "real-time factor" in out and "WebSocket" in out and "updates 7/7" in out
