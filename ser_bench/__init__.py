"""ser_bench: a speech-emotion-recognition benchmark with actor-disjoint evaluation."""

from pathlib import Path

__version__ = "0.1.0"


def conf_dir() -> Path:
    """The folder of the Hydra configs: the checkout's conf/ (editable install) or the installed ser_bench/conf."""
    import ser_bench.conf

    return Path(ser_bench.conf.__file__).resolve().parent
