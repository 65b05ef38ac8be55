"""`python -m ser_bench.server`: an MLflow tracking server on 127.0.0.1 over the project's own store.

For sweeps with many parallel jobs (`tracking=server`): jobs talk HTTP to one server process, which
alone writes the SQLite database; artifacts are served from beside the database, as with direct
SQLite use. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ser_bench.tracking import ensure_store, sqlite_path


def command(store: str, host: str, port: int) -> list[str]:
    db = sqlite_path(store)
    args = ["--backend-store-uri", store]
    if db is not None:  # absolute paths: the server may be started from any folder
        args = ["--backend-store-uri", f"sqlite:///{db.resolve()}",
                "--artifacts-destination", str(db.resolve().parent / "artifacts")]
    mlflow = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
    return [mlflow, "server", *args, "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.server", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///mlruns/mlflow.db",
                        help="backend store URI (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    ensure_store(args.store)  # created here, once, before any job can race to create it
    cmd = command(args.store, args.host, args.port)
    print(f"MLflow server on http://{args.host}:{args.port} (store {args.store}); "
          f"sweep with tracking=server tracking.uri=http://{args.host}:{args.port}", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
