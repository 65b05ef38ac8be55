"""`python -m ser_bench.live`: emotion from the microphone (or a file at real-time pace), live in the terminal.

    python -m ser_bench.live --model models:/ser@champion                      # the default microphone
    python -m ser_bench.live --model RUN_ID --input talk.wav --realtime --out events.jsonl
    python -m ser_bench.live --model RUN_ID --input talk.wav --out events.jsonl   # as fast as it scores

Every hop (0.5 s) the last window (3 s) is scored: the current emotion with its confidence, per-class bars and a
short history; `no speech` where the voice-activity detector hears none, `uncertain` below --abstain. Audio is
never written anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

from ser_bench.errors import UserError
from ser_bench.live.engine import HOP, NO_SPEECH, WINDOW

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the terminal view and the web app share."""
    parser.add_argument("--model", action="append", required=True, metavar="MODEL",
                        help="a run id, runs:/ID/model, models:/NAME/VERSION, models:/NAME@alias or a model folder; "
                        "repeat for an ensemble")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
                        help="the MLflow store of run ids and models:/ URIs (default: %(default)s)")
    parser.add_argument("--window", type=float, default=WINDOW, help="seconds per window (default: %(default)s)")
    parser.add_argument("--hop", type=float, default=HOP, help="seconds between updates (default: %(default)s)")
    parser.add_argument("--abstain", type=float, default=0.5, metavar="P",
                        help="`uncertain` below this smoothed top probability (default: %(default)s)")
    parser.add_argument("--smoothing", type=int, default=3, help="speech windows averaged (default: %(default)s)")
    parser.add_argument("--vad", choices=["silero", "none"], default="silero",
                        help="voice-activity detection (none: every window gets an emotion; default: %(default)s)")


def engine_factory(args: argparse.Namespace):
    """A function that makes a fresh Engine (one per stream) around the one loaded model."""
    from ser_bench.live.engine import Engine
    from ser_bench.live.model import load

    model = load(args.model, args.tracking_uri)
    if not 0 <= args.abstain <= 1:
        raise UserError(f"--abstain {args.abstain}: a probability between 0 and 1")

    def make() -> Engine:
        return Engine(model, window=args.window, hop=args.hop, vad=args.vad, smoothing=args.smoothing,
                      abstain=args.abstain)

    make().feed([0.0] * 16)  # refuses bad settings (and a missing VAD) now, not at the first audio
    return model, make


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.live", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    add_engine_arguments(parser)
    parser.add_argument("--input", type=Path, help="an audio file instead of the microphone")
    parser.add_argument("--realtime", action="store_true", help="with --input: feed the file at real-time pace")
    parser.add_argument("--out", type=Path, help="write every event as a JSON line to this file")
    parser.add_argument("--device", help="the input device (a sounddevice name or index; default: the system's)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds of audio")
    return parser.parse_args(argv)


def file_chunks(path: Path, hop: float, realtime: bool, seconds: float | None):
    """(chunk, rate) pieces of a file, one hop long, at real-time pace with `realtime`."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise UserError(f"cannot read audio file {path}: {err}") from None
    block, start, fed = max(1, int(info.samplerate * hop)), time.monotonic(), 0
    limit = int(seconds * info.samplerate) if seconds else None
    with f:
        for chunk in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            if limit is not None and fed >= limit:
                return
            fed += len(chunk)
            yield chunk, info.samplerate
            if realtime:
                time.sleep(max(0.0, start + fed / info.samplerate - time.monotonic()))


def microphone_chunks(hop: float, device, seconds: float | None, rate: int = 16_000):
    """(chunk, rate) pieces from the microphone through PortAudio, one hop long."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as err:
        raise UserError(f"no microphone access ({err}): install PortAudio (apt-get install libportaudio2) and "
                        f"sounddevice (pip install -e \".[live]\"), or use --input FILE --realtime") from None
    pieces: queue.Queue = queue.Queue()
    try:
        stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=int(rate * hop),
                                device=int(device) if device and device.isdigit() else device,
                                callback=lambda data, frames, t, status: pieces.put(data.copy()))
    except Exception as err:  # noqa: BLE001 - PortAudio's errors: no device, busy, unsupported rate
        raise UserError(f"cannot open the microphone ({str(err).splitlines()[0]}): check `python -m sounddevice` "
                        f"for input devices, pass --device, or use --input FILE --realtime") from None
    fed = 0
    with stream:
        while seconds is None or fed < seconds * rate:
            chunk = pieces.get()
            fed += len(chunk)
            yield chunk, rate


def run(args: argparse.Namespace) -> int:
    from ser_bench.live import view

    model, make = engine_factory(args)
    engine = make()
    source = (file_chunks(args.input, args.hop, args.realtime, args.seconds) if args.input
              else microphone_chunks(args.hop, args.device, args.seconds))
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    screen = view.Screen(engine.class_names, model_card(model), live=sys.stdout.isatty())
    counts: dict[str, int] = {}
    try:
        for event in _updates(engine, source):
            counts[event.label] = counts.get(event.label, 0) + 1
            screen.show(event)
            if out:
                out.write(json.dumps(event.to_dict()) + "\n")
    except KeyboardInterrupt:
        pass
    finally:
        if out:
            out.close()
    screen.close()
    summary = ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"{sum(counts.values())} updates: {summary or 'none'}" + (f"; events in {args.out}" if args.out else ""))
    return 0


def _updates(engine, source):
    """Every event of the stream: each chunk's, then the last window's at its end."""
    for chunk, rate in source:
        yield from engine.feed(chunk, rate)
    yield from engine.flush()


def model_card(model) -> str:
    from ser_bench.live.model import card

    c = card(model)
    return f"{c['name']} · test UA {c['test_ua']} on unseen speakers ({c['protocol']})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.realtime and not args.input:
            raise UserError("--realtime paces a file: give --input FILE (the microphone is real time already)")
        return run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["NO_SPEECH", "main"]
