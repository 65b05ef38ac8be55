"""`python -m ser_bench.data download ravdess --to PATH`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from ser_bench.data import download
from ser_bench.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.data", description="Corpus tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="fetch a corpus, verify it and unpack it where data.root can point")
    get.add_argument("corpus", choices=["ravdess"], help="ravdess: the speech release (Zenodo record 1188976)")
    get.add_argument("--to", required=True, help="folder to unpack into (Actor_01 ... Actor_24 end up there)")
    get.add_argument("--url", default=download.RAVDESS_URL, help="where to fetch the zip (default: Zenodo)")
    get.add_argument("--zip", default=None, help="use a zip already downloaded instead of fetching")
    get.add_argument("--remove-zip", action="store_true", help="delete the downloaded zip after unpacking")
    check = sub.add_parser("check-cache", help="hash every cache entry in full; remove the damaged ones")
    check.add_argument("--cache-dir", default=os.environ.get("SER_BENCH_CACHE", "~/.cache/ser_bench"),
                       help="the cache folder (default: %(default)s)")
    check.add_argument("--keep", action="store_true", help="only report damaged entries, do not remove them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "check-cache":
            return check_cache(Path(args.cache_dir).expanduser(), remove=not args.keep)
        download.ravdess(args.to, url=args.url, archive=args.zip, keep_zip=not args.remove_zip)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def check_cache(cache_dir: Path, remove: bool) -> int:
    """Every entry (a folder holding offsets.npy) under `cache_dir`, hashed in full; damaged ones removed (they
    are made again when next needed). Exit status 1 where damage was found."""
    from ser_bench.data import integrity
    from ser_bench.data.cache import _set_aside

    if not cache_dir.is_dir():
        raise UserError(f"--cache-dir {cache_dir} is not a folder")
    entries = sorted(p.parent for p in cache_dir.glob("*/*/offsets.npy") if not p.parent.name.startswith("."))
    damaged = 0
    for entry in tqdm(entries, desc="checking cache entries", unit="entry", disable=len(entries) < 5):
        why = integrity.full_check(entry)
        if why:
            damaged += 1
            print(f"damaged: {entry} ({why}){'; removed' if remove else ''}")
            if remove:
                _set_aside(entry)
    print(f"{len(entries)} cache entries checked in {cache_dir}: {damaged} damaged")
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
