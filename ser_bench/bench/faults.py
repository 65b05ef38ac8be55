"""`python -m ser_bench.bench faults`: bad inputs and injected faults through the real commands, on the tiny
synthetic corpus in a temporary folder; how each one ended.

Bad inputs (a user's mistakes, through `python -m ser_bench`, `.predict`, `.export`, `.report`, `.runs`,
`.data`): each should end in exactly one `error:` line with exit status 2 and leave no run behind. An outcome
is `one line`, `traceback`, `several lines` (another exit status or more than one line), or `accepted` (exit
0: a silent wrong result where an error was due).

Faults (a process killed or interrupted, cache entries damaged, a diverging run, two sweeps at once): each
should leave no run RUNNING (after `python -m ser_bench.runs close-stale` where a process was killed
outright), lose no FINISHED result, duplicate none, and, for a damaged cache, give the clean run's test UA.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

HELP = "bad inputs and injected faults through the real commands: how each one ends"
TINY = ["data.intensities=[1]", "data.statements=1", "data.repetitions=1"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", choices=["inputs", "faults"], help="run one half only")


class Audit:
    def __init__(self, work: Path):
        self.work, self.cache = work, work / "cache"
        self.uri = f"sqlite:///{work}/mlflow.db"
        self.base = [*TINY, f"cache_dir={self.cache}", f"tracking.uri={self.uri}", "trainer.max_epochs=1",
                     "trainer.enable_progress_bar=false", "early_stopping.patience=0"]

    def run(self, module: str, *args: str, timeout: int = 600, env: dict | None = None):
        return subprocess.run([sys.executable, "-m", module, *args], cwd=self.work, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})

    def train(self, *args: str, **kwargs):
        return self.run("ser_bench", *self.base, f"hydra.run.dir={self.work}/run", *args, **kwargs)

    def statuses(self) -> Counter:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        return Counter(r.info.status for r in client.search_runs(ids, max_results=10_000)) if ids else Counter()

    def finished(self) -> dict[str, float]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        return {r.info.run_id: r.data.metrics.get("test/ua") for r in client.search_runs(ids, max_results=10_000)
                if r.info.status == "FINISHED" and r.data.tags.get("kind") != "sweep"}


def outcome(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if "Traceback" in proc.stderr:
        return "traceback"
    if proc.returncode == 0:
        return "accepted"
    return "one line" if proc.returncode == 2 and len(errors) == 1 else "several lines"


def corpora(a: Audit, manifest) -> dict[str, Path]:
    """RAVDESS-layout copies of the tiny corpus, each spoiled one way."""
    import soundfile as sf

    source = manifest[0].path.parents[1]
    out = {}
    for name in ("nan", "truncated", "badname", "notaudio"):
        root = a.work / f"corpus-{name}"
        shutil.copytree(source, root)
        victim = sorted(root.glob("Actor_03/*.wav"))[0]
        if name == "nan":
            wave, rate = sf.read(victim, dtype="float32")
            wave[10:20] = np.nan
            sf.write(victim, wave, rate, subtype="FLOAT")
        elif name == "truncated":
            victim.write_bytes(victim.read_bytes()[:3000])
        elif name == "badname":
            victim.rename(victim.with_name("happy-actor3.wav"))
        else:
            victim.write_text("not audio\n" * 50)
        out[name] = root
    return out


def bad_inputs(a: Audit, manifest) -> list[tuple[str, str]]:
    w = a.work
    (w / "corrupt.db").write_bytes(os.urandom(8192))
    (w / "fake.db").write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    with sqlite3.connect(w / "other.db") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    (w / "afile").write_text("x")
    (w / "notes.txt").write_text("hello")
    spoiled = corpora(a, manifest)
    trained = a.train("tracking.run_name=audit-model")
    no_model = a.train("tracking.log_model=false", "tracking.run_name=audit-nomodel")
    four = a.train("labels=four", "tracking.run_name=audit-four")
    run_ids = [line.split()[2] for p in (trained, no_model, four) for line in p.stdout.splitlines()
               if line.startswith("MLflow run ")]
    good, no_model_id, four_id = run_ids
    clip = manifest[0].path
    empty = w / "empty.wav"
    empty.write_bytes(b"")
    noaudio_dir = w / "noaudio"
    noaudio_dir.mkdir()
    (noaudio_dir / "readme.md").write_text("nothing")
    train_cases = {
        "data=ravdess without data.root": ["data=ravdess"],
        "data.root that does not exist": ["data=ravdess", f"data.root={w}/missing"],
        "data.root that is a file": ["data=ravdess", f"data.root={w}/afile"],
        "corpus with a NaN WAV": ["data=ravdess", f"data.root={spoiled['nan']}"],
        "corpus with a truncated WAV": ["data=ravdess", f"data.root={spoiled['truncated']}"],
        "corpus with a bad file name": ["data=ravdess", f"data.root={spoiled['badname']}"],
        "corpus with a text file named .wav": ["data=ravdess", f"data.root={spoiled['notaudio']}"],
        "split.fold=9": ["split.fold=9"], "split.fold=-1": ["split.fold=-1"],
        "model=cnn3d": ["model=cnn3d"], "augment=nois": ["augment=nois"], "split=leave_one_out": ["split=foo"],
        "labels=ekman6": ["labels=ekman6"], "loader.batch_size=0": ["loader.batch_size=0"],
        "loader.batch_size=-1": ["loader.batch_size=-1"], "loader.max_seconds=-1": ["loader.max_seconds=-1"],
        "loader.max_seconds=0": ["loader.max_seconds=0"], "trainer.max_epochs=0": ["trainer.max_epochs=0"],
        "model.optim.lr=-1": ["model.optim.lr=-1"], "model.optim.lr=abc": ["model.optim.lr=abc"],
        "model.optim.label_smoothing=1.5": ["model.optim.label_smoothing=1.5"],
        "model.optim.ema=1.5": ["model.optim.ema=1.5"], "model.optim.mixup=-1": ["model.optim.mixup=-1"],
        "early_stopping.patience=-1": ["early_stopping.patience=-1"], "seed=abc": ["seed=abc"],
        "seed=1.5": ["seed=1.5"], "unknown key foo=1": ["foo=1"], "misspelt loader.batchsize=8": ["loader.batchsize=8"],
        "model.net.frontend.norm=cepstral": ["model.net.frontend.norm=cepstral"],
        "model.net.pool=max": ["model.net.pool=max"],
        "augment.mode=sometimes": ["augment=noise", "augment.mode=sometimes"],
        "augment.copies=0": ["augment=noise", "augment.copies=0"], "split.n_val_actors=0": ["split.n_val_actors=0"],
        "split.n_val_actors=30": ["split.n_val_actors=30"], "eval_data without split=cross": ["eval_data=synthetic"],
        "split=cross without eval_data": ["split=cross"], "trainer.precision=17": ["trainer.precision=17"],
        "unparseable split.fold=abc(": ["split.fold=abc("], "a sweep list without -m": ["model=cnn1d,cnn2d"],
        "model.init_from a text file": [f"model.init_from={w}/notes.txt"],
        "model.init_from an unknown run id": ["model.init_from=0123456789abcdef0123456789abcdef"],
        "model=wav2vec2 offline without weights": ["model=wav2vec2"],
        "tracking.uri=foo://x": ["tracking.uri=foo://x"], "tracking.uri a folder": [f"tracking.uri=sqlite:///{w}"],
        "tracking.uri a corrupt file": [f"tracking.uri=sqlite:///{w}/corrupt.db"],
        "tracking.uri a fake SQLite header": [f"tracking.uri=sqlite:///{w}/fake.db"],
        "tracking.uri someone else's database": [f"tracking.uri=sqlite:///{w}/other.db"],
        "cache_dir a file": [f"cache_dir={w}/afile"],
        "tracking.uri an unreachable server": ["tracking.uri=http://127.0.0.1:9"],
    }
    results = []
    before = a.statuses()
    for name, args in train_cases.items():
        proc = a.train(*args, env={"HF_HUB_OFFLINE": "1"})
        results.append((f"train: {name}", outcome(proc)))
    results.append(("train: no run left behind by the mistakes above",
                    "one line" if a.statuses() == before else f"runs added: {dict(a.statuses() - before)}"))
    sweep = a.run("ser_bench", "-m", *a.base, "model.optim.lr=1e-3,-1", f"hydra.sweep.dir={w}/badsweep")
    results.append(("sweep: one bad value among the swept ones", outcome(sweep)))
    sweep = a.run("ser_bench", "-m", *a.base, "model=cnn1d,cnn3d", f"hydra.sweep.dir={w}/badsweep2")
    results.append(("sweep: an unknown option among the swept ones", outcome(sweep)))
    predict = {
        "unknown run id": ["--model", "0123456789abcdef0123456789abcdef", str(clip)],
        "a run without a model": ["--model", no_model_id, str(clip)],
        "unknown registered model": ["--model", "models:/nobody@champion", str(clip)],
        "unknown model version": ["--model", "models:/nobody/3", str(clip)],
        "a file as --model": ["--model", str(w / "afile"), str(clip)],
        "a folder that is no model": ["--model", str(noaudio_dir), str(clip)],
        "an empty audio file": ["--model", good, str(empty)],
        "a text file named .wav": ["--model", good, str(spoiled["notaudio"] / "Actor_03" / sorted(
            p.name for p in (spoiled["notaudio"] / "Actor_03").iterdir())[0])],
        "a NaN WAV": ["--model", good, str(sorted((spoiled["nan"] / "Actor_03").glob("*.wav"))[0])],
        "a folder without audio": ["--model", good, str(noaudio_dir)],
        "an input that does not exist": ["--model", good, str(w / "nope.wav")],
        "ensemble members with different classes": ["--model", good, "--model", four_id, str(clip)],
        "--out with an unknown suffix": ["--model", good, "--out", str(w / "x.xlsx"), str(clip)],
        "--abstain 2": ["--model", good, "--abstain", "2", str(clip)],
        "--window 0": ["--model", good, "--window", "0", str(clip)],
        "a store that does not exist": ["--tracking-uri", f"sqlite:///{w}/none.db", "--model", good, str(clip)],
        "a corrupt store": ["--tracking-uri", f"sqlite:///{w}/corrupt.db", "--model", good, str(clip)],
    }
    for name, args in predict.items():
        uri = [] if "--tracking-uri" in args else ["--tracking-uri", a.uri]
        results.append((f"predict: {name}", outcome(a.run("ser_bench.predict", *uri, *args))))
    export = {"not a run id": ["abc"], "unknown run id": ["0123456789abcdef0123456789abcdef"],
              "--alias without --register": [good, "--alias", "x"],
              "a store that does not exist": [good, "--tracking-uri", f"sqlite:///{w}/none.db"]}
    for name, args in export.items():
        uri = [] if "--tracking-uri" in args else ["--tracking-uri", a.uri]
        results.append((f"export: {name}", outcome(a.run("ser_bench.export", *args, *uri))))
    report = {"unknown experiment": ["--tracking-uri", a.uri, "--experiment", "nope", "--no-log"],
              "a store that does not exist": ["--tracking-uri", f"sqlite:///{w}/none.db", "--no-log"],
              "a corrupt store": ["--tracking-uri", f"sqlite:///{w}/corrupt.db", "--no-log"],
              "someone else's database": ["--tracking-uri", f"sqlite:///{w}/other.db", "--no-log"],
              "a folder as store": ["--tracking-uri", f"sqlite:///{w}", "--no-log"]}
    for name, args in report.items():
        results.append((f"report: {name}", outcome(a.run("ser_bench.report", *args, "--out", str(w / "rep")))))
    results.append(("runs close-stale: a store that does not exist",
                    outcome(a.run("ser_bench.runs", "close-stale", "--tracking-uri", f"sqlite:///{w}/none.db"))))
    results.append(("data check-cache: a cache folder that does not exist",
                    outcome(a.run("ser_bench.data", "check-cache", "--cache-dir", str(w / "nocache")))))
    return results


def _interrupt(a: Audit, args: list[str], wait_for: int, sig: int = signal.SIGINT) -> int:
    """Start a command in its own process group, signal the group once `wait_for` runs are RUNNING."""
    proc = subprocess.Popen([sys.executable, "-m", "ser_bench", *args], cwd=a.work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while a.statuses()["RUNNING"] < wait_for and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(proc.pid, sig)
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return -9


def _entries(cache: Path, kind: str) -> list[Path]:
    return [p.parent for p in (cache / kind).glob("*/offsets.npy")]


def faults(a: Audit) -> list[tuple[str, str]]:
    from ser_bench.tracking import ensure_experiment

    ensure_experiment(a.uri, "ser_bench")
    long = [*a.base, "trainer.max_epochs=400", "tracking.run_name=audit-long"]
    clean = a.train("tracking.run_name=audit-clean", "seed=7")
    clean_ua = float(clean.stdout.split("test  UA ")[1].split()[0])
    kept = a.finished()
    results = []

    def check(name: str, expect_ua: bool = False, extra: str = "") -> None:
        counts = a.statuses()
        now = a.finished()
        lost = [r for r in kept if r not in now]
        kept.update(now)
        verdict = [f"RUNNING {counts['RUNNING']}", f"lost {len(lost)}"]
        if expect_ua:
            verdict.append(f"test UA {extra} (clean {clean_ua:.3f})")
        results.append((name, ", ".join(verdict)))

    code = _interrupt(a, long, 1, signal.SIGKILL)
    a.run("ser_bench.runs", "close-stale", "--tracking-uri", a.uri)
    check(f"kill -9 a single run, then runs close-stale (exit {code})")
    code = _interrupt(a, long, 1, signal.SIGINT)
    check(f"Ctrl-C a single run (exit {code})")
    code = _interrupt(a, long, 1, signal.SIGTERM)
    a.run("ser_bench.runs", "close-stale", "--tracking-uri", a.uri)
    check(f"SIGTERM a single run, then runs close-stale (exit {code})")
    sweep = ["-m", *a.base, "seed=0,1,2", "trainer.max_epochs=400", f"hydra.sweep.dir={a.work}/s1"]
    code = _interrupt(a, sweep, 1)
    check(f"Ctrl-C a sweep, basic launcher (exit {code})")
    sweep = ["-m", *a.base, "seed=0,1,2", "trainer.max_epochs=400", "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={a.work}/s2"]
    code = _interrupt(a, sweep, 2)
    check(f"Ctrl-C a sweep, joblib launcher (exit {code})")
    code = _interrupt(a, sweep, 2, signal.SIGKILL)
    a.run("ser_bench.runs", "close-stale", "--tracking-uri", a.uri)
    check(f"kill -9 a joblib sweep's process group, then runs close-stale (exit {code})")
    for kind, spoil in (("audio", "truncate"), ("log_mel", "overwrite"), ("log_mel", "quiet"), ("audio", "offsets")):
        for entry in _entries(a.cache, kind):
            path = entry / ("offsets.npy" if spoil == "offsets" else "audio.npy")
            st = path.stat()
            with open(path, "r+b") as f:
                if spoil in ("truncate", "offsets"):
                    f.truncate(st.st_size // 2)
                else:
                    f.seek(st.st_size // 2)
                    f.write(os.urandom(st.st_size // 4))
            if spoil == "quiet":
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        again = a.train("tracking.run_name=audit-clean", "seed=7")
        ua = again.stdout.split("test  UA ")[1].split()[0] if "test  UA " in again.stdout else "none"
        warned = "damaged" in again.stderr + again.stdout
        check(f"{kind} cache entries {spoil}{' (size and mtime kept)' if spoil == 'quiet' else ''}: "
              f"{'warned, made again' if warned else 'NOT warned'}", True, ua)
    code = a.train("model.optim.lr=1e30", "trainer.max_epochs=3", "tracking.run_name=audit-diverge").returncode
    counts = a.statuses()
    check(f"a diverging run (lr=1e30, exit {code}; FAILED runs now {counts['FAILED']})")
    procs = [subprocess.Popen([sys.executable, "-m", "ser_bench", "-m", *a.base, "seed=11,12"], cwd=a.work,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    folders = {line.split("outputs in ")[1] for out in outs for line in out.splitlines() if "outputs in " in line}
    check(f"two sweeps started together: {len(folders)} folders")
    return results


def run(args: argparse.Namespace) -> None:
    from ser_bench.data import synthetic

    # Commands get Ctrl-C as from a terminal even where this audit was started in the background (`cmd &` in a
    # script starts it with SIGINT ignored, and its children would inherit that: Ctrl-C would then do nothing).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with tempfile.TemporaryDirectory(prefix="ser_bench_faults_") as tmp:
        a = Audit(Path(tmp))
        manifest = synthetic.load(a.cache, intensities=[1], statements=1, repetitions=1)
        rows = []
        if args.only != "faults":
            rows += [("input", n, o) for n, o in bad_inputs(a, manifest)]
        if args.only != "inputs":
            rows += [("fault", n, o) for n, o in faults(a)]
        width = max(len(n) for _, n, _ in rows)
        for kind, name, result in rows:
            print(f"{kind:<6} {name:<{width}}  {result}")
        inputs = Counter(o for k, _, o in rows if k == "input")
        print(f"\nbad inputs: {sum(inputs.values())}; " + ", ".join(f"{n} {k}" for k, n in inputs.most_common()))
        print(json.dumps({"inputs": dict(inputs), "faults": [r for k, *r in rows if k == "fault"]}))
