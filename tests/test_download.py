"""RAVDESS download against a local HTTP server: resume after a dropped connection, verification, errors."""

from __future__ import annotations

import io
import threading
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ser_bench.data import download, ravdess
from ser_bench.data.__main__ import main
from ser_bench.errors import UserError


def tiny_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x01\x00" * 400)
    return buf.getvalue()


def ravdess_zip(names: set[str]) -> bytes:
    """A zip shaped like the release (Actor_NN/NAME.wav, plus a stray file), with tiny clips."""
    buf = io.BytesIO()
    clip = tiny_wav()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(names):
            z.writestr(name, clip)
        z.writestr("readme.txt", "not a clip")
    return buf.getvalue()


class Server:
    """Serves one payload at /file.zip with Range support; `drop_after` cuts the first response short."""

    def __init__(self, payload: bytes, drop_after: int | None = None):
        self.payload, self.drop_after, self.requests = payload, drop_after, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drop_after is not None and len(outer.requests) == 1:
                    self.wfile.write(body[:outer.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def release() -> bytes:
    return ravdess_zip(download.ravdess_names())


def test_the_release_has_1440_names_in_the_adapter_layout():
    names = download.ravdess_names()
    assert len(names) == 1440
    assert len({n.split("/")[0] for n in names}) == 24
    for name in list(names)[:50]:
        folder, stem = name.split("/")
        assert int(folder[-2:]) == ravdess.parse_name(stem).actor


def test_download_resumes_after_a_dropped_connection_and_unpacks(tmp_path, release):
    server = Server(release, drop_after=len(release) // 3)
    try:
        assert main(["download", "ravdess", "--to", str(tmp_path / "rav"), "--url", server.url]) == 0
    finally:
        server.close()
    assert server.requests[0] is None and server.requests[1] == f"bytes={len(release) // 3}-"  # resumed, not restarted
    assert (tmp_path / "rav" / download.RAVDESS_ZIP).read_bytes() == release
    manifest = ravdess.scan(tmp_path / "rav")
    assert len(manifest) == 1440 and len({u.actor for u in manifest}) == 24
    assert not list((tmp_path / "rav").glob("*.part")) and not list((tmp_path / "rav").glob(".unpack-*"))


def test_a_damaged_zip_is_refused_with_one_line(tmp_path, release, capsys):
    broken = bytearray(release)
    middle = len(broken) // 2
    broken[middle:middle + 64] = bytes(64)  # corrupt compressed data: a CRC or inflate error
    server = Server(bytes(broken))
    try:
        assert main(["download", "ravdess", "--to", str(tmp_path / "rav"), "--url", server.url]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("error:") and "damaged" in err and "fetch it afresh" in err
    assert not (tmp_path / "rav" / "Actor_01").exists()
    assert not (tmp_path / "rav" / download.RAVDESS_ZIP).exists()  # a rerun downloads afresh


def test_a_zip_without_the_expected_files_is_refused(tmp_path):
    names = download.ravdess_names()
    archive = tmp_path / "partial.zip"
    archive.write_bytes(ravdess_zip(set(sorted(names)[:-3])))
    with pytest.raises(UserError, match="lacks 3 of the 1440"):
        download.ravdess(tmp_path / "rav", archive=archive)


def test_no_network_is_one_clear_line(tmp_path, capsys):
    server = Server(b"")
    url = server.url
    server.close()  # nothing listens there any more
    assert main(["download", "ravdess", "--to", str(tmp_path / "rav"), "--url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "cannot reach" in err and "no network" in err and "\n" not in err
