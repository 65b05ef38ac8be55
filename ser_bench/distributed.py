"""One run on several processes (Lightning's DDP: gloo on CPU, NCCL on GPUs), on one machine.

The process that runs the job starts the ranks with torch's elastic launcher (what `torchrun` runs), each rank
in a fresh interpreter running `train.run` on the same resolved config, and waits: torch supervises them (one
that fails stops the others) and hands back rank 0's result. Lightning finds the ranks' environment
(TorchElasticEnvironment) and starts nothing itself, so this works the same from the command line, in a sweep's
job, under submitit or Ray, and the launching process is left as it was for the next job.

Rank 0 alone opens the MLflow run and writes artifacts; each rank evaluates a contiguous shard of the validation
and test clips (`Shard`: no clip twice, none left out), torchmetrics adds up the counts of all ranks, and the
per-clip predictions are gathered in clip order (`gather`).
"""

from __future__ import annotations

import functools
import logging
import logging.config
import os
import pickle
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Sampler

from ser_bench.errors import UserError

log = logging.getLogger(__name__)

RANK: int | None = None  # this process's rank where launch() started it, else None
_USER_ERROR = "ser_bench user error: "


PROBED = ("accelerator", "devices", "num_nodes", "strategy", "precision")  # the settings that decide the processes


def processes(trainer_cfg) -> int:
    """How many training processes `trainer.*` asks for: 0 where it is one ordinary process, n for a DDP run of
    n ranks. What DDP cannot do here yet (several nodes, spawned or forked ranks, FSDP, DeepSpeed) is one line."""
    return 0 if is_rank() else _plan(_key(trainer_cfg))[0]


def _key(trainer_cfg) -> tuple:
    """`trainer.*`'s settings in PROBED, hashable (a list of devices as a tuple)."""
    def plain(value):
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        return tuple(value) if isinstance(value, list) else value

    return tuple((k, plain(trainer_cfg[k])) for k in PROBED if k in trainer_cfg)


@functools.cache
def _plan(key: tuple) -> tuple[int, str]:
    """(processes, process-group backend) for these settings, resolved once per process: the settings check and
    the run ask the same question."""
    trainer = dict(key)
    devices, nodes, strategy = trainer.get("devices", "auto"), trainer.get("num_nodes", 1), trainer.get("strategy",
                                                                                                        "auto")
    if devices in (1, "1") and nodes == 1 and strategy in ("auto", None, ""):
        return 0, ""
    shown = list(devices) if isinstance(devices, tuple) else devices
    settings = f"trainer.devices={shown} trainer.num_nodes={nodes} trainer.strategy={strategy}"
    if not isinstance(strategy, str):
        raise UserError(f"{settings}: give trainer.strategy as a name (ddp, auto, ...)")
    only_ddp = f"{settings}: only DDP is built for several processes (trainer.strategy=ddp)"
    if "fsdp" in strategy or "deepspeed" in strategy:
        raise UserError(only_ddp)
    probe = _probe(trainer, settings)
    from lightning.pytorch.accelerators import CUDAAccelerator
    from lightning.pytorch.strategies import DDPStrategy, ParallelStrategy

    if probe.num_nodes > 1:
        raise UserError(f"{settings}: one machine only for now (a run over several nodes is not built); use "
                        f"trainer.num_nodes=1, and a launcher to spread a sweep's runs over machines")
    if type(probe.strategy) is DDPStrategy:
        if probe.strategy._start_method != "popen":
            raise UserError(f"{settings}: the ranks are started by ser_bench (torch's elastic launcher); use "
                            f"trainer.strategy=ddp")
        return probe.world_size, "NCCL" if isinstance(probe.accelerator, CUDAAccelerator) else "gloo"
    if isinstance(probe.strategy, ParallelStrategy):
        raise UserError(f"{only_ddp}, not {type(probe.strategy).__name__}")
    return 0, ""


def _probe(trainer: dict, settings: str):
    """The Trainer these settings make, for how Lightning resolves them ("auto", -1, "0,1", a GPU count)."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its "GPU available: ..." lines come once, from the run's own Trainer
    try:
        return L.Trainer(**trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    except (ValueError, TypeError, ImportError, RuntimeError, MisconfigurationException) as err:
        raise UserError(f"{settings}: {str(err).splitlines()[0]}") from None
    finally:
        quiet.setLevel(level)


def is_rank() -> bool:
    """Whether this process is one of a DDP run's ranks (started by launch())."""
    return RANK is not None


def is_lead() -> bool:
    """Whether this process talks to MLflow and writes the run's files: rank 0, or an ordinary run."""
    return RANK in (None, 0)


def launch(cfg: DictConfig, sweep: dict | None, n: int) -> dict:
    """Run `cfg` on `n` ranks and return rank 0's result (what `train.run` returns). A user's mistake in any rank
    is a UserError here; other failures a RuntimeError with the failing rank's traceback.

    The ranks are commands (`python -m ser_bench.distributed JOB`), not forked or spawned from this process, so it
    can be a joblib (loky), Ray or submitit worker; they read the job from the run's output folder (`ranks/`,
    with torch's per-rank error files) and rank 0 writes its result there."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    folder = Path(cfg.paths.output_dir) / "ranks"
    folder.mkdir(parents=True, exist_ok=True)
    job, result = folder / "job.pkl", folder / "result.pkl"
    result.unlink(missing_ok=True)
    with open(job, "wb") as f:  # the ranks have no Hydra: every value resolved here
        pickle.dump({"config": OmegaConf.to_container(cfg, resolve=True), "sweep": sweep, "n": n,
                     "job_logging": _job_logging(), "level": logging.getLogger().level, "result": str(result)}, f)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.5,
                          logs_specs=DefaultLogsSpecs(log_dir=str(folder)))
    log.info("DDP: %d ranks (torch elastic, %s)", n, _plan(_key(cfg.trainer))[1])
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)  # its launch settings and a failed rank's traceback: said once, below
    try:
        elastic_launch(config, sys.executable)("-m", "ser_bench.distributed", str(job))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        info = failure.message if isinstance(failure.message, dict) else {"message": str(failure.message)}
        message = info.get("message", "")
        if _USER_ERROR in message:
            raise UserError(message.split(_USER_ERROR, 1)[1]) from None
        raise RuntimeError(f"DDP rank {rank} failed (exit code {failure.exitcode}): {message or 'no message'}\n"
                           f"{info.get('extraInfo', {}).get('py_callstack', '')}") from None
    except SignalException as err:  # Ctrl-C or kill: torch passed it on to the ranks (rank 0 closed its run KILLED)
        if err.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise SystemExit(128 + int(err.sigval)) from None
    finally:
        elastic.setLevel(level)
    with open(result, "rb") as f:
        return pickle.load(f)


def _job_logging() -> dict | None:
    """The job's logging settings (console and the job's log file), for rank 0 to log where the job logs."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return OmegaConf.to_container(HydraConfig.get().job_logging, resolve=True)


def main(job_file: str) -> None:
    """One rank (`python -m ser_bench.distributed JOB`, started by launch()): the same run as every other rank;
    rank 0 writes the run's result beside the job. Rank 0 logs where the job logs (Hydra's settings), or at the
    launching process's level; the others only what goes wrong."""
    global RANK
    import torch

    with open(job_file, "rb") as f:
        job = pickle.load(f)
    RANK = int(os.environ["RANK"])
    if RANK == 0 and job["job_logging"]:
        logging.config.dictConfig(job["job_logging"])
    elif RANK == 0:
        logging.basicConfig(level=job["level"])
    else:  # rank 0 says everything else, and shows the progress
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        logging.basicConfig(level=logging.INFO, handlers=[handler],
                            format=f"[rank {RANK}] %(levelname)s %(name)s: %(message)s")
        os.environ["TQDM_DISABLE"] = "1"
    if "OMP_NUM_THREADS" not in os.environ:  # the cores shared out, as Lightning's own launcher does
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job["n"]))
    from ser_bench import train

    cfg = OmegaConf.create(job["config"])
    OmegaConf.set_struct(cfg, True)
    try:
        result = train.run(cfg, job["sweep"])
    except UserError as err:  # one line where the job ends (launch()), no traceback here
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(RuntimeError(f"{_USER_ERROR}{err}"))
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C, passed on by the launching process: the run is closed KILLED already
        sys.exit(130)
    if RANK == 0:
        with open(job["result"], "wb") as f:
            pickle.dump(result, f)


class Shard(Sampler):
    """Evaluation rows of one rank: a contiguous block of the `n` rows, blocks differing by at most one row, so
    every row is evaluated once and the ranks' rows, joined in rank order, are the rows in order."""

    def __init__(self, n: int, rank: int, world: int, what: str = "evaluation"):
        if n < world:
            raise UserError(f"{n} {what} clips for {world} DDP processes: every process needs one; use fewer "
                            f"trainer.devices")
        self.indices = range(rank * n // world, (rank + 1) * n // world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def gather(rows: list) -> list:
    """Every rank's `rows`, joined in rank order, on every rank (all ranks call it); `rows` itself elsewhere."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


if __name__ == "__main__":  # a rank: the module's own copy, so that train and the data module see RANK
    from torch.distributed.elastic.multiprocessing.errors import record  # the error file launch() reads

    from ser_bench.distributed import main as rank_main

    record(rank_main)(sys.argv[1])
