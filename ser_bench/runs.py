"""Runs left RUNNING by a process that is gone (Ctrl-C on a sweep, kill -9, power loss): found and closed.

Every run records the host, pid and start time of the process that trains it (tags `host`, `pid`,
`process.start`). A RUNNING run whose process is gone from this host is marked KILLED with an `error` tag; a run
whose process is alive, or that ran on another host (which cannot be checked from here), is never touched.

    python -m ser_bench.runs close-stale [--tracking-uri URI] [--experiment NAME ...]

Sweeps do the same for their experiment before they start, and for their own runs after a Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

from ser_bench.errors import UserError

log = logging.getLogger(__name__)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks after boot (Linux /proc), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": str(pid), "process.start": _start_time(pid) or ""}


def alive(tags: dict[str, str]) -> bool | None:
    """Whether the run's process still runs: None where it cannot be told (another host, no pid recorded)."""
    if tags.get("host") != socket.gethostname() or not tags.get("pid", "").isdigit():
        return None
    pid = int(tags["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: alive, and not ours to judge
    started = tags.get("process.start")
    return not started or _start_time(pid) in (started, None)


def close_stale(client, experiment_ids: list[str], sweep_id: str | None = None, wait: float = 0.0) -> list[str]:
    """Mark the RUNNING runs of these experiments (of one sweep, if given) whose process is gone as KILLED;
    `wait` seconds for processes that are still shutting down. Returns the closed run ids."""
    query = "attributes.status = 'RUNNING'" + (f" and tags.sweep_id = '{sweep_id}'" if sweep_id else "")
    own = str(os.getpid())  # this process's own runs (a sweep's parent, in its launcher) are the caller's to close
    running = [r for r in client.search_runs(experiment_ids, query, max_results=10_000)  # sweeps' parents too
               if not (r.data.tags.get("pid") == own and r.data.tags.get("host") == socket.gethostname())]
    deadline, closed = time.monotonic() + wait, []
    for run in running:
        while alive(run.data.tags) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(run.data.tags) is False:
            client.set_tag(run.info.run_id, "error", run.data.tags.get("error") or "process gone (interrupted or "
                           "killed); closed by ser_bench")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.runs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stale = sub.add_parser("close-stale", help="mark RUNNING runs whose process is gone from this host as KILLED")
    stale.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    stale.add_argument("--experiment", action="append", help="experiment name; repeat (default: every experiment)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        from mlflow.tracking import MlflowClient

        from ser_bench.stores import existing

        client = MlflowClient(existing(args.tracking_uri))
        exps = [e for e in client.search_experiments() if not args.experiment or e.name in args.experiment]
        if args.experiment and len(exps) < len(args.experiment):
            missing = set(args.experiment) - {e.name for e in exps}
            raise UserError(f"no experiment named {', '.join(sorted(missing))} in {args.tracking_uri}")
        closed = close_stale(client, [e.experiment_id for e in exps]) if exps else []
        other = [r for r in client.search_runs([e.experiment_id for e in exps], "attributes.status = 'RUNNING'")
                 if alive(r.data.tags) is None] if exps else []
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"closed {len(closed)} runs whose process is gone (KILLED): {' '.join(closed) or '-'}")
    if other:
        print(f"{len(other)} RUNNING runs cannot be checked from {socket.gethostname()} (another host, or no pid "
              f"recorded): {' '.join(r.info.run_id for r in other)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
