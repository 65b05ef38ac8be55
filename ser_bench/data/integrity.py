"""Cache entries that check themselves: a truncated or overwritten entry is found on open, never served.

Writing an entry records, per file, its size, its modification time, a CRC-32 of the whole file and one of
SAMPLES evenly spaced blocks (CRC-32 finds damage, not tampering, at about 2 GB/s). Opening one checks the
sizes, the offsets against the data's length and the sampled CRC (256 KB read, about a millisecond); a file
whose modification time moved (rewritten, or copied without `-p`) is hashed in full once and accepted only if
it still matches.
An entry written before these records existed is checked for structure and then recorded as it is.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

SAMPLES, BLOCK = 64, 4096
FILES = ("audio.npy", "offsets.npy")


class Damaged(Exception):
    """The entry cannot be trusted; the message says why."""


def _full(path: Path) -> str:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def _sampled(path: Path, size: int) -> str:
    crc = 0
    with open(path, "rb") as f:
        for start in sorted({min(size - BLOCK, i * size // SAMPLES) for i in range(SAMPLES)} if size > BLOCK else {0}):
            f.seek(max(0, start))
            crc = zlib.crc32(f.read(BLOCK), crc)
    return f"{crc:08x}"


def record(entry: Path) -> dict:
    """The integrity record of the files in `entry` as they are now."""
    out = {}
    for name in FILES:
        path = entry / name
        st = path.stat()
        out[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "crc32": _full(path),
                     "sample": _sampled(path, st.st_size)}
    return out


def structure(entry: Path) -> tuple[np.ndarray, np.ndarray]:
    """(memory-mapped data, offsets); Damaged where the files do not agree with each other."""
    try:
        audio = np.load(entry / "audio.npy", mmap_mode="r")
        offsets = np.load(entry / "offsets.npy")
    except (OSError, ValueError, EOFError) as err:
        raise Damaged(f"unreadable ({err})") from None
    if audio.ndim != 1 or offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 \
            or offsets[-1] != len(audio) or np.any(np.diff(offsets) < 0):
        raise Damaged(f"offsets do not fit the data ({len(offsets)} offsets ending at "
                      f"{offsets[-1] if len(offsets) else '-'}, {len(audio)} values)")
    return audio, offsets


def verify(entry: Path, info: dict) -> bool:
    """Damaged unless the entry matches its record; True where the record must be written again (legacy entry,
    or files with new modification times whose content still matches)."""
    recorded = info.get("integrity")
    if recorded is None:
        return True
    refresh = False
    for name in FILES:
        path, want = entry / name, recorded[name]
        try:
            st = path.stat()
        except OSError:
            raise Damaged(f"{name} is missing") from None
        if st.st_size != want["size"]:
            raise Damaged(f"{name} has {st.st_size} bytes, {want['size']} were written (truncated?)")
        if _sampled(path, st.st_size) != want["sample"]:
            raise Damaged(f"{name} changed since it was written (sampled checksum)")
        if st.st_mtime_ns != want["mtime_ns"]:
            if _full(path) != want["crc32"]:
                raise Damaged(f"{name} changed since it was written (checksum)")
            refresh = True
    return refresh


def rewrite_info(entry: Path, info: dict) -> None:
    """info.json with a fresh integrity record, replaced atomically."""
    tmp = entry / f".info-{os.getpid()}.json"
    tmp.write_text(json.dumps({**info, "integrity": record(entry)}))
    os.replace(tmp, entry / "info.json")


def full_check(entry: Path) -> str | None:
    """Why `entry` is damaged after hashing every byte, or None where it matches its record (or, written before
    the records existed, is consistent)."""
    try:
        info = json.loads((entry / "info.json").read_text())
        structure(entry)
        for name, want in (info.get("integrity") or {}).items():
            path = entry / name
            if path.stat().st_size != want["size"] or _full(path) != want["crc32"]:
                return f"{name} differs from what was written"
    except Damaged as why:
        return str(why)
    except (OSError, ValueError, KeyError) as err:
        return f"unreadable ({err})"
    return None
