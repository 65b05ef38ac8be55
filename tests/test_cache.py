"""The audio cache: reused when nothing changed, never stale when a file or setting changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ser_bench.data import cache

from .conftest import write_wav


def test_second_load_decodes_nothing_and_changes_invalidate(tmp_path, monkeypatch):
    paths = [tmp_path / "c" / f"03-01-0{e}-01-01-01-01.wav" for e in (1, 2)]
    for e, p in zip((1, 2), paths):
        write_wav(p, emotion=e, sample_rate=48_000)
    decoded = []
    real_read = cache.read_audio
    monkeypatch.setattr(cache, "read_audio", lambda p, sr: decoded.append(p) or real_read(p, sr))

    first = cache.load_waveforms(paths, tmp_path / "cache")
    assert len(decoded) == 2
    second = cache.load_waveforms(paths, tmp_path / "cache")
    assert len(decoded) == 2  # served from the cache
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)

    write_wav(paths[0], emotion=5, sample_rate=48_000)  # a changed file
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = cache.load_waveforms(paths, tmp_path / "cache")
    assert len(decoded) == 4
    assert not np.array_equal(third[0], first[0])

    cache.load_waveforms(paths, tmp_path / "cache", sample_rate=8_000)  # another setting
    assert len(decoded) == 6


def test_cache_key_names_files_by_their_resolved_paths(tmp_path):
    """The key holds each file's fully resolved path: the same files reached through a linked folder,
    a relative path or a linked file give the same key (checked against Path.resolve per file)."""
    import hashlib

    from ser_bench.data.cache import CACHE_VERSION, cache_key

    real = tmp_path / "real"
    real.mkdir()
    files = [real / f"{i}.wav" for i in range(3)]
    for f in files:
        f.write_bytes(b"x" * 10)
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    (tmp_path / "one.wav").symlink_to(files[1])
    ways = [files, [tmp_path / "linked" / f.name for f in files],
            [files[0], tmp_path / "one.wav", files[2]], [Path(os.path.relpath(f)) for f in files]]
    expected = hashlib.sha1(f"v{CACHE_VERSION}:16000".encode())
    for f in files:
        st = os.stat(f)
        expected.update(f"\n{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    assert {cache_key(w, 16_000) for w in ways} == {expected.hexdigest()[:16]}
