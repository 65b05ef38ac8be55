"""The command line checked before Hydra runs it: an unknown option, an unknown setting or a bad value is one
`error:` line (with the options that exist) and exit status 2, instead of Hydra's several lines and status 1.

Hydra's own flags and `hydra.*` / `hydra/*` overrides are left to Hydra. The check composes the config the
way `python -m ser_bench` does (a sweep with each swept setting at its first value) and applies
`settings.check`, plus every swept value of a checked setting; nothing is decoded, trained or logged.
"""

from __future__ import annotations

import difflib
import importlib.util

from omegaconf import OmegaConf

from ser_bench import conf_dir, search, settings
from ser_bench.errors import UserError

CONF = conf_dir()
# The plugin pins cloudpickle<3 (for its AWS launcher) against joblib's cloudpickle>=3: installed without its pins.
RAY_INSTALL = 'pip install "ray[default]>=2.10,<3" && pip install --no-deps hydra-ray-launcher==1.2.2'


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _first_line(err: Exception) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def parse(argv: list[str]):
    """(Hydra's parsed arguments, parsed overrides); None where Hydra's own flags (help, info, cfg, ...) are asked."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return None
    try:
        return args, OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as err:
        raise UserError(f"cannot read the command line: {_first_line(err)} (see `python -m ser_bench --help`)") \
            from None


def lightning_style(argv: list[str]) -> list[str]:
    """`trainer.X=V` for any Lightning Trainer flag, as Lightning users write it: Hydra would need `+trainer.X` for
    a flag conf/trainer/default.yaml does not list, so such a one becomes `++trainer.X=V` (set or add); the names
    are checked against lightning.Trainer by settings.check_trainer."""
    listed = set(OmegaConf.load(CONF / "trainer" / "default.yaml"))
    return [f"++{a}" if a.startswith("trainer.") and "=" in a and a[8:].split("=")[0] not in listed else a
            for a in argv]


# Plugin configs whose defaults do not suit ser_bench, as ser_bench's own settings of the same plugin.
ALIASES = {
    # conf/hydra/sweeper/ser_optuna.yaml: maximise the validation UA, the study beside MLflow (the plugin minimises)
    "hydra/sweeper=optuna": "hydra/sweeper=ser_optuna",
    # conf/hydra/launcher/ser_ray.yaml: the cluster from RAY_ADDRESS, no object-store size that Ray 2 refuses
    "hydra/launcher=ray": "hydra/launcher=ser_ray",
}


def plugin_aliases(argv: list[str]) -> list[str]:
    """`hydra/sweeper=optuna` and `hydra/launcher=ray` as ser_bench's settings of those Hydra plugins (ALIASES)."""
    return [ALIASES.get(a.removeprefix("override "), a) for a in argv]


def check(argv: list[str]) -> None:
    parsed = parse(argv)
    if parsed is None:
        return
    args, overrides = parsed
    single = []
    for o in overrides:
        if o.key_or_group == "hydra/sweeper" and o.value() in ("optuna", "ser_optuna"):
            search.check_installed()
        if o.key_or_group == "hydra/launcher" and o.value() in ("ray", "ser_ray") and \
                importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
            raise UserError(f"hydra/launcher=ray needs Hydra's Ray launcher: {RAY_INSTALL}")
        if o.key_or_group.startswith("hydra"):
            continue
        if o.is_sweep_override() and not args.multirun:
            raise UserError(f"{o.input_line} sweeps over several values: add -m to sweep, or write a list as "
                            f"{o.key_or_group}=[a,b]")
        values = _values(o)
        if (CONF / o.key_or_group).is_dir() and not o.is_delete():
            known = options(o.key_or_group)
            chosen = o.value() if not o.is_sweep_override() and isinstance(o.value(), list) else values
            for value in chosen:  # one option, or a list of them (logger=[csv,tensorboard])
                if value not in known and value != "null":
                    close = difflib.get_close_matches(str(value), known, n=1)
                    raise UserError(f"{o.key_or_group}={value}: no such option"
                                    f"{f' (did you mean {close[0]}?)' if close else ''}; {o.key_or_group} takes "
                                    f"{', '.join(known)}")
        single.append(f"{o.get_key_element()}={values[0]}" if not o.is_delete() else o.input_line)
    cfg = compose(single)
    settings.check(cfg)
    for o in overrides:
        if o.is_sweep_override() and o.key_or_group in settings.RULES:
            for value in _interval_bounds(o) or o.sweep_iterator():
                trial = OmegaConf.create(OmegaConf.to_container(cfg))
                OmegaConf.update(trial, o.key_or_group, value)
                settings.check_rules(trial)


def _interval_bounds(o) -> list:
    """An Optuna search range (`interval(a,b)`) as its two ends, each checked like a swept value; [] otherwise."""
    from hydra.core.override_parser.types import IntervalSweep

    value = o.value()
    return [value.start, value.end] if isinstance(value, IntervalSweep) else []


def _values(o) -> list:
    if o.is_delete():
        return [None]
    if bounds := _interval_bounds(o):
        return [str(v) for v in bounds]
    if o.is_sweep_override():
        try:
            return [str(v) for v in o.sweep_string_iterator()]
        except Exception:  # noqa: BLE001 - glob sweeps and the like: Hydra expands them itself
            return [o.get_value_element_as_str()]
    return [o.get_value_element_as_str()]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(_explain(err)) from None


def _explain(err: Exception) -> str:
    text = str(err)
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        return f"unknown setting {key}{_near(key)}; to add a new key write +{key}=VALUE"
    if "Could not find '" in text:
        group, _, name = text.split("Could not find '")[1].split("'")[0].rpartition("/")
        return f"{group}={name}: no such option; {group} takes {', '.join(options(group)) or 'nothing here'}"
    return f"bad command line: {_first_line(err)}"


def _near(key: str) -> str:
    """ ' (did you mean X?)' for the closest known setting, from the composed defaults."""
    known = []

    def walk(node, prefix: str) -> None:
        for k, v in node.items():
            known.append(prefix + str(k))
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(OmegaConf.to_container(compose([])), "")
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
