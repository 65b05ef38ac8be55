"""Bad input and faults: non-finite audio and losses, bad settings, broken stores, Ctrl-C on a sweep, runs of dead
processes, sweeps started together, damaged caches, manifests that leave their root."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from ser_bench import argv, runs, stores, train
from ser_bench.data.cache import cached_arrays
from ser_bench.errors import UserError

from .conftest import ROOT, TINY_CORPUS, write_wav


def cli(*args: str, cwd=ROOT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, **kwargs)


def one_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]


def ravdess_copy(tiny_manifest, root: Path) -> Path:
    """The tiny synthetic corpus as a RAVDESS folder of its own (to spoil one file of)."""
    source = tiny_manifest[0].path.parents[1]
    shutil.copytree(source, root)
    return root


def test_non_finite_audio_is_refused_before_training(tiny_manifest, cache_dir, tmp_path):
    root = ravdess_copy(tiny_manifest, tmp_path / "corpus")
    bad = sorted(root.glob("Actor_05/*.wav"))[0]
    wave, rate = sf.read(bad, dtype="float32")
    wave[100:200] = np.nan
    wave[300] = np.inf
    sf.write(bad, wave, rate, subtype="FLOAT")
    proc = cli("data=ravdess", f"data.root={root}", f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
               f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "trainer.max_epochs=1")
    one_line(proc, f"{bad} holds 101 non-finite samples")
    assert "RUNNING" not in _statuses(f"sqlite:///{tmp_path}/mlflow.db").values()
    assert not _statuses(f"sqlite:///{tmp_path}/mlflow.db")  # refused before any run was opened


def test_a_diverging_run_ends_failed_not_finished(make_cfg, monkeypatch):
    from ser_bench.models import module

    real = module._cross_entropy
    monkeypatch.setattr(module, "_cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    cfg = make_cfg()
    with pytest.raises(module.NonFiniteLoss, match="train/loss = nan .*at epoch 0: training diverged"):
        train.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ser_bench").experiment_id])
    assert run.info.status == "FAILED" and "training diverged" in run.data.tags["error"]


@pytest.mark.parametrize("override, needle", [
    ("loader.batch_size=0", "loader.batch_size=0: must be an integer >= 1"),
    ("loader.batch_size=-1", "loader.batch_size=-1: must be an integer >= 1"),
    ("loader.max_seconds=-1", "loader.max_seconds=-1: must be a number of seconds > 0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1"),
    ("model.optim.lr=-1", "model.optim.lr=-1: must be a number > 0"),
    ("seed=abc", "seed='abc': must be an integer"),
    ("model=cnn3d", "model=cnn3d: no such option (did you mean cnn2d?); model takes cnn1d, cnn2d"),
    ("augment=nois", "augment=nois: no such option (did you mean noise?)"),
    ("split=leave_one_out", "split=leave_one_out: no such option; split takes"),
    ("loader.batchsize=8", "unknown setting loader.batchsize (did you mean loader.batch_size?)"),
    ("tracking.uri=foo://x", "unknown scheme 'foo:'"),
    ("cache_dir=/dev/null", "is a file, not a folder"),
    ("trainer.max_epoch=3", "trainer.max_epoch: lightning.Trainer has no such argument (did you mean trainer.max_"),
    ("trainer.logger=true", "trainer.logger is set by ser_bench: add Lightning's loggers with logger=csv"),
    ("logger=nope", "logger=nope: no such option; logger takes csv, mlflow, tensorboard"),
    ("trainer.num_nodes=2", "trainer.num_nodes=2 trainer.strategy=auto: one machine only for now"),
    ("trainer.strategy=ddp_spawn", "the ranks are started by ser_bench (torch's elastic launcher); use trainer.stra"),
    ("trainer.strategy=fsdp", "trainer.strategy=fsdp: only DDP is built for several processes"),
    ("trainer.devices=0", "trainer.devices=0 trainer.num_nodes=1 trainer.strategy=auto: "),
    ("callbacks=[lr_monitor,nope]", "callbacks=nope: no such option"),
    ("data.n_actors=8", "split=emobox fold 0 tests actors 1 11 20 21, and a corpus of 8 actors lacks [11, 20, 21]"),
])
def test_bad_settings_are_one_line_before_anything_runs(override, needle, tmp_path, cache_dir):
    """The command-line check (what `python -m ser_bench` runs before Hydra) and train.run agree; no store is made."""
    base = [*TINY_CORPUS, f"cache_dir={cache_dir}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    corpora = set((cache_dir / "synthetic").glob("*"))
    with pytest.raises(UserError, match=re.escape(needle)):
        argv.check(argv.lightning_style([*base, override]))  # as __main__ hands it over
    assert not (tmp_path / "mlflow.db").exists()
    assert set((cache_dir / "synthetic").glob("*")) == corpora  # nothing generated


def test_bad_settings_through_the_real_cli(tmp_path, cache_dir):
    """Two of the cases above as a user meets them: one line, exit 2, also in a sweep (-m) with one bad value."""
    base = [*TINY_CORPUS, f"cache_dir={cache_dir}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    one_line(cli(*base, "model=cnn3d", cwd=tmp_path), "model=cnn3d: no such option")
    one_line(cli("-m", *base, "model.optim.lr=1e-3,-1", cwd=tmp_path), "model.optim.lr=-1: must be a number > 0")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


def test_broken_stores_are_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(4096))
    fake = tmp_path / "fake.db"
    fake.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER, name TEXT)")
    cases = {f"sqlite:///{corrupt}": "is not a readable SQLite database",
             f"sqlite:///{fake}": "is not a readable SQLite database",
             f"sqlite:///{tmp_path}": "is a folder, not a SQLite file",
             f"sqlite:///{other}": "a SQLite database of something else (tables patients)",
             "ftp://example.org/store": "unknown scheme 'ftp:'"}
    for uri, needle in cases.items():
        with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            stores.check(uri)
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["patients"]  # nothing added
    from ser_bench.report.__main__ import main as report

    for uri in (f"sqlite:///{corrupt}", f"sqlite:///{tmp_path}", f"sqlite:///{other}"):
        assert report(["--tracking-uri", uri, "--no-log", "--out", str(tmp_path / "r")]) == 2


def test_unwritable_cache_dir(tmp_path, cache_dir):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: a file where the folder should be instead
            locked = tmp_path / "file"
            locked.write_text("x")
        with pytest.raises(UserError, match="cache_dir="):
            argv.check([*TINY_CORPUS, f"cache_dir={locked}", f"tracking.uri=sqlite:///{tmp_path}/m.db"])
    finally:
        (tmp_path / "locked").chmod(0o700)


def _statuses(uri: str) -> dict[str, str]:
    """run id -> status (with `sweep` in front of the parent runs' ids)."""
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return {("sweep " if r.data.tags.get("kind") == "sweep" else "") + r.info.run_id: r.info.status
            for r in client.search_runs(ids)} if ids else {}


def ctrl_c_as_in_a_terminal() -> None:
    """In the child, before it starts: Ctrl-C as a terminal delivers it, even where pytest itself was started in
    the background by a script (`cmd &` starts it with SIGINT ignored, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_ctrl_c_on_a_joblib_sweep_closes_every_run_and_resumes(tmp_path, cache_dir):
    from ser_bench.tracking import ensure_experiment

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_experiment(uri, "ser_bench")  # made here, so that polling it never races the sweep creating it
    args = [sys.executable, "-m", "ser_bench", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "trainer.max_epochs=1,400", "early_stopping.patience=0", *TINY_CORPUS, f"cache_dir={cache_dir}",
            f"tracking.uri={uri}", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={tmp_path}/sweep"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:  # interrupt once the short job has finished and the long one trains
        _wait_for(lambda: "FINISHED" in _statuses(uri).values()
                  and "RUNNING" in [s for n, s in _statuses(uri).items() if not n.startswith("sweep")], 300,
                  "the sweep did not start")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "marked KILLED" in err, err[-2000:]
    statuses = _statuses(uri)
    assert sorted(statuses.values()) == ["FINISHED", "KILLED", "KILLED"], statuses  # job 1, job 2, the parent
    # The same sweep again, run by the basic launcher this time (it is not part of the config hash): the finished
    # job is skipped, the killed one starts again, and Ctrl-C in the launching process closes it too.
    basic = [a for a in args if not a.startswith("hydra.launcher") and a != "hydra/launcher=joblib"]
    again = subprocess.Popen(basic, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        _wait_for(lambda: list(_statuses(uri).values()).count("RUNNING") == 2, 300, "the re-run did not start")
        os.killpg(again.pid, signal.SIGINT)
        out, err = again.communicate(timeout=120)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    assert again.returncode == 130, err[-2000:]
    assert "skip job 0 (trainer.max_epochs=1)" in out
    assert sorted(_statuses(uri).values()) == ["FINISHED", "KILLED", "KILLED", "KILLED", "KILLED"]


def test_runs_of_dead_processes_are_closed_live_ones_never(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # the store made once: two processes must not race to make it
    code = ("import mlflow, sys, time\n"
            f"mlflow.set_tracking_uri('{uri}')\n"
            "from ser_bench.runs import process_tags\n"
            "run = mlflow.start_run(run_name=sys.argv[1], tags=process_tags())\n"
            "print(run.info.run_id, flush=True)\n"
            "time.sleep(600)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, name], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
             for name in ("dies", "lives")]
    try:
        ids = [p.stdout.readline().strip() for p in procs]
        procs[0].kill()  # kill -9: no chance to close its run
        procs[0].wait()
        assert runs.main(["close-stale", "--tracking-uri", uri]) == 0
        client = MlflowClient(uri)
        assert client.get_run(ids[0]).info.status == "KILLED"
        assert "process gone" in client.get_run(ids[0]).data.tags["error"]
        assert client.get_run(ids[1]).info.status == "RUNNING"
    finally:
        for p in procs:
            p.kill()


def test_two_sweeps_started_together_keep_apart(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    from ser_bench.tracking import ensure_experiment

    ensure_experiment(uri, "ser_bench")
    args = [sys.executable, "-m", "ser_bench", "-m", "seed=0,1", "trainer.max_epochs=1", *TINY_CORPUS,
            f"cache_dir={cache_dir}", f"tracking.uri={uri}", "trainer.enable_progress_bar=false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    folders = sorted(p.parent for p in (tmp_path / "multirun").rglob("sweep.json"))
    assert len(folders) == 2
    client = MlflowClient(uri)
    for folder in folders:
        info = json.loads((folder / "sweep.json").read_text())
        results = [json.loads(p.read_text()) for p in folder.rglob("result.json")]
        assert len(results) == 2
        for r in results:
            run = client.get_run(r["run_id"])
            assert run.data.tags["sweep_id"] == info["sweep_id"]
            assert run.data.tags["mlflow.parentRunId"] == info["parent_run_id"]
        assert sum(info["sweep_id"] in out for out in outs) == 1  # each summary names its own sweep


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) for n in (16_000, 50_000, 250_000)]


def test_damaged_cache_entries_are_made_again(tmp_path, caplog):
    entry = tmp_path / "audio" / "key"
    calls = []

    def make():
        calls.append(1)
        return _arrays()

    cached_arrays(entry, make, {"what": "test"})

    def spoil_truncate():
        with open(entry / "audio.npy", "r+b") as f:
            f.truncate(100_000)

    def spoil_overwrite():  # same size, new modification time
        with open(entry / "audio.npy", "r+b") as f:
            f.seek(400_000)
            f.write(b"\x00" * 8)

    def spoil_quietly():  # same size and modification time, inside a sampled block
        st = (entry / "audio.npy").stat()
        with open(entry / "audio.npy", "r+b") as f:
            f.seek(st.st_size // 2)
            f.write(b"\xff" * 64)
        os.utime(entry / "audio.npy", ns=(st.st_atime_ns, st.st_mtime_ns))

    def spoil_offsets():
        with open(entry / "offsets.npy", "r+b") as f:
            f.truncate(64)

    for spoil in (spoil_truncate, spoil_overwrite, spoil_quietly, spoil_offsets):
        spoil()
        caplog.clear()
        got = cached_arrays(entry, make, {"what": "test"})
        assert all(np.array_equal(a, b) for a, b in zip(got, _arrays())), spoil.__name__
        assert any("damaged" in r.message and str(entry) in r.message for r in caplog.records), spoil.__name__
    assert len(calls) == 5
    copied = tmp_path / "copy"
    shutil.copytree(entry, copied)  # new modification times, same content: accepted, not made again
    assert len(cached_arrays(copied, make, {"what": "test"})) == 3 and len(calls) == 5


def test_manifest_paths_stay_inside_their_root(tmp_path):
    from ser_bench.data import emobox

    meta, audio = tmp_path / "meta" / "demo", tmp_path / "audio"
    meta.mkdir(parents=True)
    write_wav(audio / "a.wav")
    write_wav(tmp_path / "outside.wav")
    for wav, needle in (("../outside.wav", "leads outside data.root"), (str(tmp_path / "outside.wav"), "leads outside"),
                        ("/etc/passwd", "leads outside")):
        (meta / "demo.jsonl").write_text(json.dumps({"key": "a", "wav": wav, "emo": "hap"}) + "\n")
        with pytest.raises(UserError, match=needle):
            emobox.load(meta, audio)
    (meta / "demo.jsonl").write_text(json.dumps({"key": "a", "wav": "../outside.wav", "emo": "hap"}) + "\n")
    assert len(emobox.load(meta, audio, allow_outside_root=True)) == 1
    (meta / "demo.jsonl").write_text(json.dumps({"key": "a", "wav": "sub/../a.wav", "emo": "hap"}) + "\n")
    assert emobox.load(meta, audio)[0].path == audio / "a.wav"


def test_check_cache_finds_what_the_quick_check_cannot(tmp_path, capsys):
    """A change that keeps size and modification time and misses the sampled blocks passes the quick check on
    open (documented); `python -m ser_bench.data check-cache` hashes everything and removes the entry."""
    from ser_bench.data import integrity
    from ser_bench.data.__main__ import main as data_main

    entry = tmp_path / "audio" / "key"
    cached_arrays(entry, _arrays, {"what": "test"})
    path = entry / "audio.npy"
    st = path.stat()
    sampled = {min(st.st_size - integrity.BLOCK, i * st.st_size // integrity.SAMPLES)
               for i in range(integrity.SAMPLES)}
    spot = next(o for o in range(0, st.st_size, 512)
                if all(not (s - 8 <= o < s + integrity.BLOCK) for s in sampled) and o > 1024)
    with open(path, "r+b") as f:
        f.seek(spot)
        f.write(b"\x7f" * 8)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data_main(["check-cache", "--cache-dir", str(tmp_path)]) == 1
    assert "damaged" in capsys.readouterr().out and not entry.exists()
    assert data_main(["check-cache", "--cache-dir", str(tmp_path)]) == 0


@pytest.mark.slow
def test_sigterm_ends_a_single_run_killed(tmp_path, cache_dir):
    from ser_bench.tracking import ensure_experiment

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_experiment(uri, "ser_bench")
    proc = subprocess.Popen([sys.executable, "-m", "ser_bench", *TINY_CORPUS, f"cache_dir={cache_dir}",
                             f"tracking.uri={uri}", "trainer.max_epochs=400", "early_stopping.patience=0",
                             "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}/run"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        _wait_for(lambda: "RUNNING" in _statuses(uri).values(), 300, "the run did not start")
        time.sleep(2)
        proc.terminate()
        assert proc.wait(120) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = MlflowClient(uri).search_runs(["1"])
    assert run.info.status == "KILLED" and run.data.tags["error"] == "terminated (SIGTERM)"
