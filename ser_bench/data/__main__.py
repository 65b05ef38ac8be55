"""`python -m ser_bench.data download ravdess --to PATH`."""

from __future__ import annotations

import argparse
import logging
import sys

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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        download.ravdess(args.to, url=args.url, archive=args.zip, keep_zip=not args.remove_zip)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
