"""ser_bench as an installed package: the wheel carries conf/, and the CLI runs from it in another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

from ser_bench import conf_dir

from .conftest import ROOT, TINY_CORPUS


def test_the_package_list_names_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"ser_bench"} | {f"ser_bench.{p.parent.name}" for p in (ROOT / "ser_bench").glob("*/__init__.py")}
    groups = {"ser_bench.conf." + ".".join(p.relative_to(ROOT / "conf").parts) for p in (ROOT / "conf").rglob("*")
              if p.is_dir() and "__pycache__" not in p.parts}  # config groups, nested ones (hydra/sweeper) too
    assert listed == folders | {"ser_bench.conf"} | groups
    assert (conf_dir() / "train.yaml").is_file()


def test_a_built_wheel_runs_the_cli_from_another_folder(tmp_path, cache_dir):
    """The wheel (built offline), unpacked alone on the path: configs come from it, not from the checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("ser_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    yamls = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "conf").rglob("*.yaml"))
    assert sorted(n for n in names if n.startswith("ser_bench/conf/") and n.endswith(".yaml")) == \
        [f"ser_bench/{y}" for y in yamls]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # The checkout's editable finder is dropped, so only the unpacked wheel can answer `import ser_bench`.
    code = ("import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            f"sys.path.insert(0, {str(site)!r}); import ser_bench; print('from', ser_bench.__file__); "
            "sys.argv = ['ser_bench', *sys.argv[1:]]; runpy.run_module('ser_bench', run_name='__main__')")
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", code, "debug=fast", *TINY_CORPUS, f"cache_dir={cache_dir}",
                           "trainer.enable_progress_bar=false"], cwd=work, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"from {site}" in proc.stdout and "test  UA" in proc.stdout
    assert (work / "mlruns" / "mlflow.db").is_file()
    assert Path(work / "outputs").is_dir()
