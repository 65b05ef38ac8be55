"""Where a tracking URI keeps its runs, answered without importing MLflow or Lightning (predict starts fast)."""

from __future__ import annotations

from pathlib import Path

from ser_bench.errors import UserError


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def existing(uri: str, hint: str = "run a training job first, or pass --tracking-uri") -> str:
    """`uri`, unless it names a SQLite store that does not exist (MLflow would quietly create an empty one)."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise UserError(f"no MLflow store at {db}: {hint}")
    return uri
