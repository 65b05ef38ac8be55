"""Where a tracking URI keeps its runs, checked without importing MLflow or Lightning (predict starts fast).

A store that cannot work is one line before MLflow touches it: MLflow would retry a folder given as a SQLite
file for about two minutes, add its tables to someone else's database, or fail on a corrupt file with a
traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlparse

from ser_bench.errors import UserError

SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")
MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def check(uri: str) -> str:
    """`uri` if MLflow can use it as a tracking store (an absent SQLite file is created later); else a UserError."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in SCHEMES and not (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):  # C:\ on Windows
        if scheme:
            raise UserError(f"tracking.uri={uri}: unknown scheme '{scheme}:'; use sqlite:///FILE.db, "
                            f"http://HOST:PORT (a tracking server) or a folder")
    db = sqlite_path(uri)
    if db is None:
        if scheme == "sqlite":
            raise UserError(f"tracking.uri={uri}: a SQLite store is sqlite:///PATH (three slashes)")
        return uri
    if db.is_dir():
        raise UserError(f"tracking.uri={uri}: {db} is a folder, not a SQLite file; use sqlite:///{db}/mlflow.db")
    if db.is_file() and db.stat().st_size:
        tables = _tables(db, uri)
        foreign = tables - MLFLOW_TABLES
        if tables and not MLFLOW_TABLES <= tables:
            raise UserError(f"tracking.uri={uri}: {db} is a SQLite database of something else (tables "
                            f"{', '.join(sorted(foreign)[:5])}); refusing to add MLflow's tables to it: point "
                            f"tracking.uri at a new file")
    return uri


def _tables(db: Path, uri: str) -> set[str]:
    try:
        with sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True, timeout=30) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as err:
        raise UserError(f"tracking.uri={uri}: {db} is not a readable SQLite database ({err}); move it away or "
                        f"point tracking.uri at another file") from None


def existing(uri: str, hint: str = "run a training job first, or pass --tracking-uri") -> str:
    """`uri`, checked, unless it names a SQLite store that does not exist (MLflow would quietly create an empty
    one)."""
    db = sqlite_path(check(uri))
    if db is not None and not db.is_file():
        raise UserError(f"no MLflow store at {db}: {hint}")
    return uri
