"""`python -m ser_bench`: the Hydra command line; ser_bench.cli says what it prints, train.run does the work."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ser_bench import cli
    from ser_bench.sweep import sweep_info

    sweep = sweep_info()
    return cli.single(cfg) if sweep is None else cli.sweep_job(cfg, sweep)


if __name__ == "__main__":
    main()
