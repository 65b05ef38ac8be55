"""`python -m ser_bench.predict`: emotions of new audio files with a trained model or an ensemble.

    python -m ser_bench.predict --model RUN_ID clip.wav other.flac recordings/
    python -m ser_bench.predict --model models:/ser@champion --out preds.csv long_interview.wav
    python -m ser_bench.predict --model RUN_A --model RUN_B --model RUN_C clips/       # an ensemble
    python -m ser_bench.predict --model RUN_A,RUN_B --model RUN_C clips/               # RUN_A and RUN_B: one setting

Any file soundfile reads, at any sample rate and channel count (mixed to mono, resampled to 16 kHz). A clip
longer than the model's window is scored as a timeline of windows plus one whole-clip row. Probabilities are
calibrated with the temperature each model fitted on its validation actors.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from ser_bench.errors import UserError

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
CHUNK = 64  # files decoded and scored together


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.predict", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("inputs", nargs="+", help="audio files and folders (searched recursively)")
    parser.add_argument("--model", action="append", required=True, metavar="MODEL",
                        help="a run id, runs:/ID/model, models:/NAME/VERSION, models:/NAME@alias or a model folder; "
                        "repeat for an ensemble (probabilities averaged; A,B in one --model: one setting's seeds, "
                        "averaged first)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
                        help="the MLflow store of run ids and models:/ URIs (default: %(default)s)")
    parser.add_argument("--window", type=float, help="window length in seconds for long clips (default: the model's "
                        "training crop)")
    parser.add_argument("--hop", type=float, help="seconds between window starts (default: half the window)")
    parser.add_argument("--abstain", type=float, default=0.0, metavar="P",
                        help="answer `uncertain` where the top probability is below P (default: never)")
    parser.add_argument("--uncalibrated", action="store_true", help="skip temperature scaling (the probabilities "
                        "the run's test pass logged)")
    parser.add_argument("--out", type=Path, help="write the rows to FILE.csv or FILE.jsonl as well")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: %(default)s)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.out is not None and args.out.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise UserError(f"--out {args.out}: write .csv or .jsonl (JSON lines)")
    if not 0.0 <= args.abstain <= 1.0:
        raise UserError(f"--abstain {args.abstain}: a probability between 0 and 1")
    for name in ("window", "hop"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UserError(f"--{name} {value}: a positive number of seconds")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: at least 1")


def audio_suffixes() -> set[str]:
    import soundfile as sf

    return {f".{f.lower()}" for f in sf.available_formats()} | {".aif", ".oga", ".opus", ".wave"}


def expand(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched for files with an audio suffix. A name that is neither is an error."""
    suffixes, files = audio_suffixes(), []
    from ser_bench.data.files import walk

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(p for p in walk(path) if p.is_file() and p.suffix.lower() in suffixes
                           and not p.name.startswith("."))
            if not found:
                raise UserError(f"{path} holds no audio files ({', '.join(sorted(suffixes)[:8])}, ...)")
            files += found
        else:
            raise UserError(f"{path}: no such file or folder")
    return files


def load_model(specs: list[str], tracking_uri: str, batch_size: int):
    from ser_bench.inference import bundle, sources
    from ser_bench.inference.scorer import Ensemble

    settings = [[bundle.load(sources.resolve(s.strip(), tracking_uri), batch_size) for s in spec.split(",") if s]
                for spec in specs]
    return Ensemble(settings)


def rows_for(path: Path, scored, class_names: list[str], abstain: float) -> list[dict]:
    from ser_bench.inference.scorer import answer

    def row(segment: str, start: float, end: float, probs) -> dict:
        emotion, confidence = answer(probs, class_names, abstain)
        return {"file": str(path), "segment": segment, "start": round(start, 3), "end": round(end, 3),
                "emotion": emotion, "confidence": round(confidence, 4),
                **{f"p_{c}": round(float(p), 4) for c, p in zip(class_names, probs)}}

    out = [row("window", a, b, p) for a, b, p in scored.windows] if len(scored.windows) > 1 else []
    return out + [row("clip", 0.0, scored.seconds, scored.probabilities)]


def predict(args: argparse.Namespace) -> tuple[object, list[dict]]:
    from tqdm import tqdm

    from ser_bench.data.audio import read_audio
    from ser_bench.inference.timeline import score

    files = expand(args.inputs)
    model = load_model(args.model, args.tracking_uri, args.batch_size)
    window = args.window or model.window_seconds
    hop = args.hop or (args.window / 2 if args.window else model.hop_seconds)
    rows = []
    with tqdm(total=len(files), desc="predicting", unit="file", disable=len(files) < CHUNK, file=sys.stderr) as bar:
        for start in range(0, len(files), CHUNK):
            chunk = files[start:start + CHUNK]
            waves = [read_audio(p, model.sample_rate) for p in chunk]
            for path, scored in zip(chunk, score(model, waves, window, hop, calibrated=not args.uncalibrated)):
                rows += rows_for(path, scored, model.class_names, args.abstain)
            bar.update(len(chunk))
    return model, rows


def write(path: Path, rows: list[dict]) -> None:
    """All rows or nothing: written beside the target, then moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            else:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def table(rows: list[dict], class_names: list[str]) -> str:
    width = min(60, max(len(r["file"]) for r in rows))
    head = f"{'file':<{width}}  {'start':>6} {'end':>6}  {'emotion':<10} {'conf':>5}  " + " ".join(
        f"{c[:8]:>8}" for c in class_names)
    lines = [head]
    for r in rows:
        name = r["file"] if len(r["file"]) <= width else "..." + r["file"][-width + 3:]
        probs = " ".join(f"{r['p_' + c]:>8.2f}" for c in class_names)
        span = f"{r['start']:>6.2f} {r['end']:>6.2f}"
        lines.append(f"{name:<{width}}  {span}  {r['emotion']:<10} {r['confidence']:>5.2f}  {probs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_args(args)
        model, rows = predict(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(rows, model.class_names))
    if args.out is not None:
        write(args.out, rows)
        print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    print(f"model: {model.describe()}; probabilities {'uncalibrated' if args.uncalibrated else 'calibrated'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
