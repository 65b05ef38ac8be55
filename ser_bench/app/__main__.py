"""`python -m ser_bench.app`: live emotion from the browser's microphone, on http://127.0.0.1:8000.

    python -m ser_bench.app --model models:/ser@champion
    python -m ser_bench.app --model RUN_ID --port 8001

"Start listening" streams the microphone (resampled to 16 kHz in the page) over a WebSocket; a file can be dropped
on the page too. The page names the model, its test UA on unseen speakers and the protocol. Audio stays on this
machine and in memory, unless --record DIR. The server binds 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from ser_bench.errors import UserError
from ser_bench.live.__main__ import add_engine_arguments, engine_factory

log = logging.getLogger("ser_bench.app")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.app", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    add_engine_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--record", type=Path, metavar="DIR", help="write each stream's audio to DIR as WAV")
    return parser.parse_args(argv)


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import uvicorn

        from ser_bench.app.server import MAX_MESSAGE, make_app
        from ser_bench.live.model import card

        model, make = engine_factory(args)
        app = make_app(model, make, card(model), args.record)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"error: the web app needs uvicorn and websockets ({err}): pip install -e \".[live]\"", file=sys.stderr)
        return 2
    if not loopback(args.host):
        log.warning("binding %s: anyone who can reach this machine can stream audio to it and read the answers; "
                    "the default 127.0.0.1 keeps it to this machine", args.host)
    print(f"ser_bench live: http://{args.host}:{args.port}  ({card(model)['name']})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, ws_max_size=2 * MAX_MESSAGE, log_level="warning")
    except (OSError, SystemExit) as err:
        print(f"error: cannot serve on {args.host}:{args.port} ({err}); pick another --port", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
