"""`python -m ser_bench.report.check PAGE.html [--screenshot PNG]`: open a report in a real headless
browser (Debian's chromium, installed with apt-get where missing) and check that it renders: every
image decodes, the tables are there, and the console stays free of errors. Needs the `report` extra
(playwright, used only to drive the system chromium; it downloads no browser).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium(install: bool = True) -> str:
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    if not install:
        raise SystemExit("error: no chromium found")
    print("installing Debian's chromium (apt-get) ...", flush=True)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(cmd, env=env).returncode != 0:
            raise SystemExit(f"error: `{' '.join(cmd)}` failed: install chromium yourself (it needs root)")
    return find_chromium(install=False)


def check(page: Path, screenshot: Path | None) -> list[str]:
    """Problems found (empty when the page renders cleanly)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        tab.goto(page.resolve().as_uri(), wait_until="load")
        images = tab.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
        problems += [f"broken image: {alt}" for alt, done, width in images if not done or width == 0]
        if not images:
            problems.append("no images on the page")
        if tab.locator("table").count() == 0:
            problems.append("no tables on the page")
        if screenshot:
            tab.screenshot(path=str(screenshot), full_page=True)
        print(f"{page}: {len(images)} images, {tab.locator('table').count()} tables, "
              f"{tab.evaluate('document.body.scrollHeight')} px tall", flush=True)
        browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.report.check", description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, help="write a full-page PNG here")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: no such file: {args.page}", file=sys.stderr)
        return 2
    problems = check(args.page, args.screenshot)
    for p in problems:
        print(p, file=sys.stderr)
    print("renders cleanly" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
