"""The Hydra configs, installed as the package ser_bench.conf (see pyproject.toml): `python -m ser_bench` reads
them as pkg://ser_bench.conf, wherever ser_bench is installed, and ser_bench.CONF is their folder."""
