"""`python -m ser_bench`: the Hydra command line. Prints results; the work happens in train.run."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from ser_bench.errors import UserError
    from ser_bench.tracking import tracking_summary
    from ser_bench.train import run

    try:
        result = run(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    m, s = result["metrics"], result["split"]
    leaky = "  [LEAKY random split: not a speaker-independent result]" if s["leaky"] else ""
    print(f"\ntest  UA {m['test/ua']:.3f}  WA {m['test/wa']:.3f}  macro-F1 {m['test/macro_f1']:.3f}"
          f"   ({cfg.data.corpus}, {cfg.model.name}, split {s['protocol']} fold {s['fold']}, "
          f"test actors {' '.join(map(str, s['test_actors']))}; best epoch {int(m['best/epoch'])}, "
          f"gap {m['best/gap_acc']:+.3f}){leaky}")
    print(f"MLflow run {result['run_id']} in experiment '{result['experiment']}': "
          f"{tracking_summary(result['tracking_uri'])}")
    return m["test/ua"]


if __name__ == "__main__":
    main()
