"""`python -m ser_bench`: the Hydra command line; ser_bench.cli says what it prints, train.run does the work."""

from __future__ import annotations

import os
import secrets

import hydra
from omegaconf import DictConfig, OmegaConf

from ser_bench import search

LAUNCH = "SER_BENCH_LAUNCH"


def launch_tag() -> str:
    """A random tag of the launching process, inherited by its sweep's job processes: output and sweep folders
    of two commands started in the same second differ (`hydra.run.dir`, `hydra.sweep.dir` in conf/train.yaml)."""
    return os.environ.setdefault(LAUNCH, secrets.token_hex(3))


if not OmegaConf.has_resolver("ser_bench.launch"):
    OmegaConf.register_new_resolver("ser_bench.launch", launch_tag, use_cache=True)
search.register_resolvers()  # hydra/sweeper=optuna: the study's store and name


@hydra.main(version_base="1.3", config_path="pkg://ser_bench.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ser_bench import cli
    from ser_bench.sweep import sweep_info

    sweep = sweep_info()
    return cli.single(cfg) if sweep is None else cli.sweep_job(cfg, sweep)


if __name__ == "__main__":
    import sys

    from ser_bench.argv import check, lightning_style, plugin_aliases
    from ser_bench.errors import UserError

    sys.argv[1:] = plugin_aliases(lightning_style(sys.argv[1:]))
    try:
        check(sys.argv[1:])  # an unknown option, setting or bad value: one line, before Hydra starts
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except (KeyboardInterrupt, SystemExit) as stop:  # Ctrl-C, kill (SIGTERM), or a sweep's own exit status
        from ser_bench import sweep

        closed = sweep.interrupted() if sweep.CURRENT else []
        if isinstance(stop, SystemExit) and stop.code != 128 + 15:
            raise  # an exit status of its own (a user's mistake, a sweep's end): nothing was left open
        what = "terminated" if isinstance(stop, SystemExit) else "interrupted"
        print(f"\n{what}: the sweep's open runs ({len(closed)} jobs) and its parent run marked KILLED; run the same "
              f"command again to resume" if sweep.CURRENT else f"\n{what}", file=sys.stderr)
        sys.exit(130 if what == "interrupted" else stop.code)
