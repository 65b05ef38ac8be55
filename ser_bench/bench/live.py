"""`python -m ser_bench.bench live`: the live engine's latency and real-time factor, through the engine and through
the web app's WebSocket; a soak run; and what streaming costs in accuracy on RAVDESS's test actors.

- latency: the audio is fed one hop (0.5 s) at a time; an update's latency is the time from handing over the hop
  that completes a window to the event coming back (engine: `feed`; WebSocket: send to receive, on 127.0.0.1).
  Real-time factor: processing time over audio time.
- VAD: silero-vad's own share of it (frames of 32 ms, per second of audio).
- soak (`--soak SECONDS`): that much audio at real-time pace through the WebSocket, the server's RSS sampled;
  dropped hops = hops sent whose update never came.
- accuracy (`--accuracy --tracking-uri URI --experiment NAME`): for every FINISHED run there, each test clip of
  `--root` scored whole (predict's answer) and streamed (the mean of its speech windows' probabilities, and the
  majority of their labels), UA of each.

Models are built fresh (random weights: speed does not depend on them) unless `--model` names a trained one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ser_bench.bench.common import DEFAULT_ROOT, ROOT_HELP, corpus_paths, peak_rss_mib

HELP = "live engine latency and real-time factor (engine, WebSocket), soak, streaming accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=ROOT_HELP + "; without it, synthetic speech")
    parser.add_argument("--nets", default="cnn1d,resnet2d", help="networks to time (default: %(default)s)")
    parser.add_argument("--model", help="a trained model instead (run id, models:/..., or a model folder)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per latency measurement (default: 60)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of audio for the soak run (default: none)")
    parser.add_argument("--accuracy", action="store_true", help="streaming vs whole-clip UA on the runs of "
                        "--experiment (needs --root)")
    parser.add_argument("--experiment", default="ravdess_accuracy")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def audio(root: Path | None, seconds: float) -> np.ndarray:
    """Speech with its pauses: RAVDESS clips back to back, or synthetic utterances with 1 s gaps."""
    from ser_bench.data.audio import read_audio

    if root is not None:
        clips = [read_audio(p) for p in corpus_paths(root, int(seconds / 3) + 2)]
    else:
        from ser_bench.data import synthetic

        gap = np.zeros(16_000, np.float32)
        clips = [np.concatenate([synthetic.synthesize(1 + i % 24, 1 + i % 8, 1, 1, 1, seed=0), gap])
                 for i in range(int(seconds / 3) + 2)]
    return np.concatenate(clips)[:int(seconds * 16_000)].astype(np.float32)


def percentiles(ms: list[float]) -> str:
    return f"median {statistics.median(ms):6.1f} ms   p95 {np.percentile(ms, 95):6.1f} ms   max {max(ms):6.1f} ms"


def through_engine(model, wave: np.ndarray) -> tuple[list[float], float, float]:
    from ser_bench.live.engine import Engine

    engine = Engine(model)
    hop = engine.hop
    latencies, busy = [], 0.0
    for i in range(0, len(wave), hop):
        start = time.perf_counter()
        events = engine.feed(wave[i:i + hop])
        spent = time.perf_counter() - start
        busy += spent
        if events:
            latencies.append(1000 * spent)
    vad = engine.vad.__class__()
    start = time.perf_counter()
    vad.feed(wave)
    vad_s = time.perf_counter() - start
    return latencies, busy / (len(wave) / 16_000), vad_s / (len(wave) / 16_000)


def serve(model):
    import uvicorn

    from ser_bench.app.server import MAX_MESSAGE, make_app
    from ser_bench.live.engine import Engine
    from ser_bench.live.model import card

    app = make_app(model, lambda: Engine(model), card(model))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, ws_max_size=2 * MAX_MESSAGE,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"ws://127.0.0.1:{port}/ws"


def through_websocket(url: str, wave: np.ndarray, realtime: bool, on_hop=None) -> tuple[list[float], int, int]:
    """Latencies (ms) of the updates, hops sent that complete a window, and updates received."""
    from websockets.sync.client import connect

    hop, window = 8000, 48_000
    latencies, expected, got = [], 0, 0
    with connect(url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        ws.recv()
        start = time.monotonic()
        for k, i in enumerate(range(0, len(wave), hop)):
            sent = time.perf_counter()
            ws.send(wave[i:i + hop].astype("<f4").tobytes())
            if i + hop >= window and i + hop <= len(wave):
                expected += 1
                json.loads(ws.recv())
                got += 1
                latencies.append(1000 * (time.perf_counter() - sent))
            if on_hop:
                on_hop(k)
            if realtime:
                time.sleep(max(0.0, start + (i + hop) / 16_000 - time.monotonic()))
    return latencies, expected, got


def run(args: argparse.Namespace) -> None:
    import torch

    from ser_bench.bench.predict import fresh_model
    from ser_bench.live.model import load

    wave = audio(args.root, args.seconds)
    print(f"{len(wave) / 16_000:.0f} s of {'RAVDESS' if args.root else 'synthetic'} speech; window 3 s, hop 0.5 s; "
          f"torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="ser_bench_live_") as tmp:
        specs = [args.model] if args.model else [str(fresh_model(n, Path(tmp) / n)) for n in args.nets.split(",")]
        for spec in specs:
            model = load([spec], args.tracking_uri)
            through_engine(model, wave[:16_000 * 5])  # warm-up
            latencies, rtf, vad = through_engine(model, wave)
            name = model.members[0].name
            print(f"{name:<10} engine     {percentiles(latencies)}   real-time factor {rtf:.3f} "
                  f"(VAD alone {vad:.3f})")
            server, thread, url = serve(model)
            try:
                through_websocket(url, wave[:16_000 * 5], realtime=False)
                ws_lat, expected, got = through_websocket(url, wave, realtime=True)
                print(f"{name:<10} WebSocket  {percentiles(ws_lat)}   updates {got}/{expected} (real-time pace)")
                if args.soak:
                    soak(url, args)
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        if args.accuracy:
            accuracy(args)
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


def soak(url: str, args: argparse.Namespace) -> None:
    long = np.tile(audio(args.root, 120.0), int(np.ceil(args.soak / 120)))[:int(args.soak * 16_000)]
    samples = []
    base = rss_mib()
    _, expected, got = through_websocket(url, long, realtime=True,
                                         on_hop=lambda k: samples.append(rss_mib()) if k % 20 == 0 else None)
    first = statistics.median(samples[len(samples) // 10:len(samples) // 5]) if len(samples) > 10 else base
    print(f"soak {args.soak:.0f} s at real-time pace: RSS at start {base:.0f} MiB, after warm-up {first:.0f}, "
          f"peak {max(samples):.0f}, final {samples[-1]:.0f} MiB ({100 * (samples[-1] / first - 1):+.1f}% since "
          f"warm-up); updates {got}/{expected}, dropped {expected - got}")


def accuracy(args: argparse.Namespace) -> None:
    from mlflow.tracking import MlflowClient
    from sklearn.metrics import balanced_accuracy_score

    from ser_bench.bench.common import need_root
    from ser_bench.data.audio import read_audio
    from ser_bench.data.ravdess import scan
    from ser_bench.inference.timeline import score
    from ser_bench.live.engine import NO_SPEECH, Engine
    from ser_bench.live.model import load

    manifest = scan(need_root(args.root))
    client = MlflowClient(args.tracking_uri)
    exp = client.get_experiment_by_name(args.experiment)
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'") if exp else []
    runs = [r for r in runs if r.data.tags.get("kind") not in ("sweep", "report") and "fold" in r.data.tags]
    rows = []
    for r in sorted(runs, key=lambda r: int(r.data.tags["fold"])):
        model = load([r.info.run_id], args.tracking_uri)
        actors = {int(a) for a in r.data.tags["actors.test"].split()}
        clips = [u for u in manifest if u.actor in actors]
        truth = [u.emotion for u in clips]
        waves = [read_audio(u.path) for u in clips]
        whole = [model.class_names[int(np.argmax(s.probabilities))] for s in score(model, waves, None, None)]
        mean, vote, silent = [], [], 0
        for w in waves:
            engine = Engine(model, abstain=0.0, smoothing=1)
            events = engine.feed(w) + engine.flush()
            spoken = [e for e in events if e.label != NO_SPEECH] or events  # a clip the VAD hears nothing in
            silent += len(spoken) == len(events) and all(e.label == NO_SPEECH for e in events)
            p = np.mean([e.window for e in spoken], axis=0)
            mean.append(model.class_names[int(np.argmax(p))])
            labels = [model.class_names[int(np.argmax(e.window))] for e in spoken]
            vote.append(max(set(labels), key=labels.count))
        rows.append((r.data.tags["fold"], balanced_accuracy_score(truth, whole), balanced_accuracy_score(truth, mean),
                     balanced_accuracy_score(truth, vote), len(clips), silent))
        print(f"fold {rows[-1][0]}: whole-clip UA {rows[-1][1]:.3f}, streamed (mean of speech windows) "
              f"{rows[-1][2]:.3f}, streamed (majority) {rows[-1][3]:.3f}; {len(clips)} clips, {silent} with no "
              f"speech window")
    if rows:
        cols = np.array([r[1:4] for r in rows])
        print(f"mean over {len(rows)} folds: whole-clip {cols[:, 0].mean():.3f}, streamed mean "
              f"{cols[:, 1].mean():.3f} ({cols[:, 1].mean() - cols[:, 0].mean():+.3f}), streamed majority "
              f"{cols[:, 2].mean():.3f} ({cols[:, 2].mean() - cols[:, 0].mean():+.3f})")
