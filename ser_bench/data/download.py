"""`python -m ser_bench.data download ravdess --to PATH`: the official RAVDESS speech release from Zenodo.

Downloads `Audio_Speech_Actors_01-24.zip` (record 1188976) into PATH with a progress bar,
resuming a partial download (HTTP Range) after a dropped connection or a second invocation,
checks the archive (zip CRCs, and exactly the 1440 speech file names the release has), and
unpacks it into the layout `data=ravdess` reads: PATH/Actor_NN/03-01-EE-II-SS-RR-NN.wav.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser_bench.data.ravdess import RavdessName
from ser_bench.errors import UserError

log = logging.getLogger(__name__)

RAVDESS_RECORD = "https://zenodo.org/records/1188976"
RAVDESS_ZIP = "Audio_Speech_Actors_01-24.zip"
RAVDESS_URL = f"{RAVDESS_RECORD}/files/{RAVDESS_ZIP}?download=1"
CHUNK = 1 << 16


def ravdess_names() -> set[str]:
    """The 1440 speech file names of the release: 24 actors x (neutral + 7 emotions x 2 intensities) x 2 x 2."""
    names = set()
    for actor in range(1, 25):
        for emotion in range(1, 9):
            for intensity in (1,) if emotion == 1 else (1, 2):
                for statement in (1, 2):
                    for repetition in (1, 2):
                        stem = RavdessName(3, 1, emotion, intensity, statement, repetition, actor).stem()
                        names.add(f"Actor_{actor:02d}/{stem}.wav")
    return names


def fetch(url: str, dest: Path, attempts: int = 5, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming from `dest.part`; retries a dropped connection `attempts` times."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if have and response.status != 206:  # the server ignored Range: start again
                    have = 0
                total = _total(response, have)
                with open(part, "ab" if have else "wb") as out, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=dest.name, mininterval=0.5) as bar:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            size = part.stat().st_size
            if total is not None and size < total:
                raise http.client.IncompleteRead(b"", total - size)
            os.replace(part, dest)
            return dest
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # asked past the end: the part is complete or stale
                part.unlink()
                continue
            raise UserError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            raise UserError(f"cannot reach {url} ({err.reason}); this machine may have no network: download "
                            f"{RAVDESS_ZIP} from {RAVDESS_RECORD} elsewhere and pass --zip FILE") from None
        except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
            got = part.stat().st_size if part.exists() else 0
            log.warning("connection dropped at %d bytes (%s); resuming (attempt %d of %d)", got,
                        type(err).__name__, attempt, attempts)
            time.sleep(min(2 ** attempt, 30) if attempt > 1 else 0)
    raise UserError(f"download of {url} kept breaking off after {attempts} attempts; run the same command "
                    f"again to resume from {part}")


def _total(response, have: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if content_range.startswith("bytes") and "/" in content_range and not content_range.endswith("*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None else None


def verify(archive: Path, expected: set[str]) -> dict[str, str]:
    """Expected name -> member name in the zip; a damaged or incomplete archive is a UserError."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            members = [m for m in z.namelist() if not m.endswith("/")]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UserError(f"{archive} is not a readable zip ({err})") from None
    if bad is not None:
        raise UserError(f"{archive} is damaged ({bad} fails its CRC check)")
    found = {}
    for member in members:
        p = PurePosixPath(member)
        if p.suffix == ".wav" and len(p.parts) >= 2:
            found[f"{p.parent.name}/{p.name}"] = member
    missing = sorted(expected - set(found))
    if missing:
        raise UserError(f"{archive} lacks {len(missing)} of the {len(expected)} expected files (e.g. {missing[0]}); "
                        f"it is not the RAVDESS speech release or it is incomplete")
    return {name: found[name] for name in sorted(expected)}


def unpack(archive: Path, members: dict[str, str], to: Path) -> None:
    """Extract the expected members into `to` (Actor_NN/NAME.wav), through a temporary folder beside it."""
    to.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=to))
    try:
        with zipfile.ZipFile(archive) as z:
            for name, member in tqdm(members.items(), desc="unpacking", unit="file", mininterval=0.5):
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for actor in sorted(p for p in tmp.iterdir() if p.is_dir()):
            final = to / actor.name
            if final.exists():
                shutil.rmtree(final)
            os.replace(actor, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ravdess(to: str | Path, url: str = RAVDESS_URL, archive: str | Path | None = None, keep_zip: bool = True) -> Path:
    """Fetch (unless `archive` is given), verify and unpack RAVDESS speech into `to`; returns `to`."""
    to = Path(to).expanduser()
    expected = ravdess_names()
    fetched = archive is None
    if fetched:
        archive = fetch(url, to / RAVDESS_ZIP)
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise UserError(f"--zip {archive} is not a file")
    try:
        members = verify(archive, expected)
    except UserError as err:
        if not fetched:
            raise
        archive.unlink()
        raise UserError(f"{err}; removed the download, run the same command to fetch it afresh") from None
    unpack(archive, members, to)
    if not keep_zip and archive.parent == to:
        archive.unlink()
    print(f"RAVDESS speech: {len(members)} files in {to}\nuse it with: python -m ser_bench data=ravdess data.root={to}")
    return to
