"""`python -m ser_bench.bench NAME [options]`: benchmarks, run deliberately (never in the test suite)."""

from __future__ import annotations

import argparse

from ser_bench.bench import augment, baselines, ddp, embed, faults, features, live, predict, step, sweep, train

BENCHMARKS = {"augment": augment, "baselines": baselines, "ddp": ddp, "embed": embed, "faults": faults,
              "features": features, "live": live, "predict": predict, "step": step, "sweep": sweep, "train": train}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ser_bench.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, module in BENCHMARKS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    BENCHMARKS[args.name].run(args)


if __name__ == "__main__":
    main()
