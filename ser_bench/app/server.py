"""The web app: one self-contained page and a WebSocket per stream, on Starlette (the ASGI toolkit MLflow already
brings) served by uvicorn.

Protocol on `/ws`: the client sends `{"type": "start", "sample_rate": R}` (text), then audio as binary messages of
little-endian float32 mono samples at R Hz, and `{"type": "stop"}` at the end of a file. The server answers each
update with `{"type": "event", ...}` (ser_bench.live.engine.Event) and `{"type": "end"}` after a stop. A malformed
message closes that connection with a reason (code 1003 or 1009); the server stays up. Each connection has its own
engine (buffer, VAD state, history), freed when it closes. Audio is kept in memory only, unless --record DIR.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ser_bench.errors import UserError

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20  # bytes per WebSocket message: 1 MiB is 16 s of float32 audio at 16 kHz
PAGE = Path(__file__).with_name("page.html")


def make_app(model, make_engine, card: dict, record: Path | None = None) -> Starlette:
    page = PAGE.read_text(encoding="utf-8").replace("/*CARD*/null", json.dumps(card))
    streams: dict[str, object] = {}  # open connections -> their engines (freed on close; the tests read it)

    async def index(request):
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def model_info(request):
        return JSONResponse({**card, "open_streams": len(streams)})

    async def stream(ws: WebSocket):
        await ws.accept()
        sid = uuid.uuid4().hex[:8]
        engine, rate, recorder = None, None, None
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if engine is None:
                        return await _close(ws, 1003, "send {\"type\": \"start\", \"sample_rate\": R} before audio")
                    if len(data) > MAX_MESSAGE or len(data) % 4:
                        return await _close(ws, 1009 if len(data) > MAX_MESSAGE else 1003,
                                            f"audio messages are float32 samples, at most {MAX_MESSAGE} bytes")
                    samples = np.frombuffer(data, dtype="<f4")
                    if recorder is not None:
                        recorder.write(samples)
                    events = await run_in_threadpool(engine.feed, samples, rate)
                    for e in events:
                        await ws.send_text(json.dumps({"type": "event", **e.to_dict()}))
                    continue
                try:
                    control = json.loads(text or "")
                    kind = control["type"]
                except (ValueError, KeyError, TypeError):
                    return await _close(ws, 1003, "text messages are JSON objects with a type (start or stop)")
                if kind == "start":
                    rate = control.get("sample_rate")
                    if not isinstance(rate, int):
                        return await _close(ws, 1003, "start needs an integer sample_rate")
                    engine = make_engine()
                    streams[sid] = engine
                    await run_in_threadpool(engine.feed, np.zeros(0, np.float32), rate)  # checks the rate
                    if record is not None:
                        recorder = _recorder(record, sid, rate)
                    await ws.send_text(json.dumps({"type": "started", "stream": sid, "sample_rate": rate}))
                elif kind == "stop" and engine is not None:
                    for e in await run_in_threadpool(engine.flush):
                        await ws.send_text(json.dumps({"type": "event", **e.to_dict()}))
                    await ws.send_text(json.dumps({"type": "end"}))
                    streams.pop(sid, None)
                    engine = None
                else:
                    return await _close(ws, 1003, f"unexpected message type {kind!r}")
        except UserError as err:
            await _close(ws, 1003, str(err))
        except WebSocketDisconnect:
            pass
        finally:
            streams.pop(sid, None)
            if recorder is not None:
                recorder.close()

    app = Starlette(routes=[Route("/", index), Route("/model", model_info), WebSocketRoute("/ws", stream)])
    app.state.streams = streams
    return app


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    log.info("closing a stream: %s", reason)
    try:
        await ws.send_text(json.dumps({"type": "error", "reason": reason}))
        await ws.close(code=code, reason=reason[:120])
    except (RuntimeError, WebSocketDisconnect):
        pass


def _recorder(folder: Path, sid: str, rate: int):
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{sid}.wav"
    log.warning("recording this stream to %s (--record)", path)
    return sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="FLOAT")
