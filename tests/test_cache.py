"""The audio cache: reused when nothing changed, never stale when a file or setting changes."""

from __future__ import annotations

import os

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
