"""Options shared by several commands, declared once, and the checks that turn their text
into values (each error names its flag).

Every option can also be set by an environment variable, ``BARNSTORM_<NAME>``, and by a
key of a ``--config`` TOML file. A variable has one meaning in every command that reads
it: where two commands would give one name two meanings, one of them gets its own (the
reference backend binds ``BARNSTORM_SERVE_HOST``, while ``BARNSTORM_HOST`` is always the
dashboards' URL).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_SLA
from simulator.fleet.build import DEFAULT_SEED
from simulator.fleet.topics import DEFAULT_TOPIC_TEMPLATE
from simulator.metrics.prometheus import parse_listen
from simulator.metrics.sla import parse_sla
from simulator.redact import redact_url, register, register_url
from simulator.tomlfile import Table, describe
from simulator.units import parse_duration, parse_speed

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


def option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """A click option that can also be set by ``BARNSTORM_<NAME>``."""
    name = decls[0].lstrip("-").replace("-", "_").upper()
    attrs.setdefault("envvar", f"BARNSTORM_{name}")
    attrs.setdefault("show_envvar", True)
    return click.option(*decls, **attrs)


def stacked(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several options as one decorator, shown in ``--help`` in the order given."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


# -- one declaration per shared option ---------------------------------------------------


def farms_option(
    *, default: int = 10, minimum: int = 1, help: str = "Number of farms in the fleet."
) -> Callable[[F], F]:
    return option(
        "--farms", type=click.IntRange(min=minimum), default=default, show_default=True, help=help
    )


def seed_option() -> Callable[[F], F]:
    return option(
        "--seed",
        type=click.IntRange(min=0),
        default=DEFAULT_SEED,
        show_default=True,
        help="Seed of everything random: same seed, same fleet and same readings.",
    )


def mqtt_option(help: str) -> Callable[[F], F]:
    return option("--mqtt", metavar="URL", help=help)


def http_option(help: str) -> Callable[[F], F]:
    return option("--http", metavar="URL", help=help)


def speed_option() -> Callable[[F], F]:
    return option(
        "--speed",
        default="1",
        show_default=True,
        help='Simulated seconds per real second ("60": an hour a minute), or "max".',
    )


def dashboards_option() -> Callable[[F], F]:
    """``--host``: the dashboards' base URL, as Locust's own ``--host``."""
    return option(
        "--host", required=True, help="Base URL of the dashboards (e.g. http://127.0.0.1:8080)."
    )


def sla_options(func: F) -> F:
    """``--sla`` (repeatable) and ``--junit``."""
    return stacked(
        option(
            "--sla",
            multiple=True,
            metavar="SLA",
            help='What the run must show, e.g. "ingest.p95<250ms", "dashboard.error_rate<1%", '
            '"loss==0", "ingest.rate>=2000/s" (repeatable; or an [sla] table in --config). '
            f"A broken SLA exits {EXIT_SLA}.",
        ),
        option(
            "--junit",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the SLA verdicts as JUnit XML (one test case per SLA) for CI.",
        ),
    )(func)


def fleet_options(func: F) -> F:
    """The fleet: how many farms, from which seed, templates and profiles, its topics."""
    return stacked(
        farms_option(),
        seed_option(),
        option(
            "--farms-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Directory of farm templates (default: the shipped farms/).",
        ),
        option(
            "--profiles-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Directory of device profiles (default: the shipped device_profiles/).",
        ),
        option(
            "--topic-template",
            default=DEFAULT_TOPIC_TEMPLATE,
            show_default=True,
            help="MQTT topic; placeholders {farm_id} {room_id} {device_type} {device_id} "
            "{kind} {site_id}.",
        ),
    )(func)


# -- --config ---------------------------------------------------------------------------


def config_option(func: F) -> F:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config_file,
        help="TOML file of option defaults (keys are option names).",
    )(func)


#: config-file keys whose values are secrets (as the flags of the same names).
SECRET_KEYS = frozenset({"password", "token", "readback_token"})


def _load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager ``--config``: the file's keys become the command's defaults, each checked
    against its option's type (errors name the file and key)."""
    if not value:
        return value
    table = Table.load(Path(value))
    options = {p.name: p for p in ctx.command.params if p.name and isinstance(p, click.Option)}
    defaults: dict[str, Any] = {}
    for key in table:
        name = key.replace("-", "_")
        if name not in options or name == "config":
            raise table.error(key, f"not an option of `simulate {ctx.command.name}`")
        if name == "sla":
            defaults[name] = _config_slas(table)
            continue
        setting = _config_value(table, key, options[name])
        if name in SECRET_KEYS and isinstance(setting, str):
            register(setting)
        elif isinstance(setting, str):
            register_url(setting)
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[CONFIG_FILE] = table.source
    return value


#: where ``ctx.meta`` keeps the --config file's name, for errors about its keys.
CONFIG_FILE = "barnstorm.config_file"


def _config_value(table: Table, key: str, option: click.Option) -> Any:
    """A config file's value for ``option``, if its type fits: click would turn 1.7 into
    1 for an integer option and true into 1, silently."""
    value = table.raw(key)
    if option.multiple:
        if not isinstance(value, list):
            raise table.error(key, f"expected a list, got {describe(value)}")
        return [_scalar(table, key, option, item) for item in value]
    return _scalar(table, key, option, value)


def _scalar(table: Table, key: str, option: click.Option, value: Any) -> Any:
    kind = option.type
    if option.is_flag:
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(kind, click.types.IntParamType):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(kind, click.types.FloatParamType):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    elif isinstance(kind, click.Choice):
        ok = isinstance(value, str) and value in kind.choices
        expected = "one of " + ", ".join(f'"{c}"' for c in kind.choices)
    elif isinstance(kind, click.Path):
        ok, expected = isinstance(value, str) and bool(value), "a path"
    else:  # text: durations, speeds and URLs may be written as numbers too
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        expected = "a text"
        value = str(value) if ok else value
    if not ok:
        raise table.error(key, f"expected {expected}, got {describe(value)}")
    return value


def without_effect(ignored: dict[str, str]) -> list[str]:
    """A warning for each option the user set (on the command line or in a --config file)
    that the run's target does not use: a setting that silently does nothing misleads."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP)
    lines = []
    for name, target in ignored.items():
        if ctx.get_parameter_source(name) in given:
            flag = "--" + name.replace("_", "-")
            lines.append(f"simulate: warning: {flag} has no effect on {target}")
    return lines


def from_file_or_env(error: ConfigError) -> ConfigError:
    """``error`` about a flag, told as what set it: a --config file's key or an
    environment variable, when one of them gave the value rather than the command line."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not error.where.startswith("--"):
        return error
    name = error.where[2:].replace("-", "_")
    option = next((p for p in ctx.command.params if p.name == name), None)
    if option is None:
        return error
    source = ctx.get_parameter_source(name)
    if source is click.core.ParameterSource.DEFAULT_MAP and CONFIG_FILE in ctx.meta:
        return ConfigError(f"{ctx.meta[CONFIG_FILE]}: {name}", error.problem)
    if source is click.core.ParameterSource.ENVIRONMENT and isinstance(option, click.Option):
        return ConfigError(f"{option.envvar} ({error.where})", error.problem)
    return error


def _config_slas(table: Table) -> list[str]:
    """``[sla]`` with ``"ingest.p95" = "<250ms"`` entries, or ``sla = ["loss==0", ...]``."""
    raw = table.raw("sla")
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    elif isinstance(raw, dict):
        slas = table.table("sla")
        texts = [f"{key}{slas.string(key)}" for key in slas]
    else:
        raise table.error("sla", 'expected a table ("ingest.p95" = "<250ms") or a list of SLAs')
    for text in texts:
        parse_sla(text, f"{table.source}: sla")
    return texts


# -- checks: text to values, errors naming the flag --------------------------------------


def positive_duration(text: str, flag: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(flag, str(exc)) from None
    if seconds <= 0:
        raise ConfigError(flag, f'"{text}" is not a positive duration')
    return seconds


def optional_duration(text: str | None, flag: str) -> float | None:
    return None if text is None else positive_duration(text, flag)


def speed(text: str, flag: str = "--speed") -> float | None:
    try:
        return parse_speed(str(text))
    except ValueError as exc:
        raise ConfigError(flag, str(exc)) from None


def backoff(text: str) -> tuple[float, float]:
    """``--reconnect-backoff BASE,CAP``."""
    try:
        base, cap = (parse_duration(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            "--reconnect-backoff", f'expected BASE,CAP such as "1s,60s", got "{text}"'
        ) from None
    if not 0 < base <= cap:
        raise ConfigError("--reconnect-backoff", f'expected 0 < BASE <= CAP, got "{text}"')
    return base, cap


def share(text: str, flag: str) -> float:
    """A share of messages: ``"1%"``, ``"0.5%"`` or ``"100%"``."""
    cleaned = str(text).strip()
    try:
        if not cleaned.endswith("%"):
            raise ValueError
        value = float(cleaned[:-1]) / 100.0
    except ValueError:
        raise ConfigError(flag, f'expected a percentage such as "1%", got "{text}"') from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(flag, f'expected a percentage from 0% to 100%, got "{text}"')
    return value


def writable(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.parent.resolve().is_dir():
        raise ConfigError(flag, f"directory {path.parent} does not exist")
    return path


def readable(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.is_file():
        raise ConfigError(flag, f"{path} is not a readable file")
    return path


def prometheus(text: str | None) -> str | None:
    if text is not None:
        parse_listen(text)
    return text


def shard(text: str | None) -> tuple[int, int]:
    """``--shard I/N``."""
    if not text:
        return (0, 1)
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError("--shard", f'expected I/N such as "0/4", got "{text}"') from None
    if not 0 <= index < count:
        raise ConfigError("--shard", f'expected 0 <= I < N, got "{text}"')
    return (index, count)


def http_url(text: str | None, flag: str) -> str | None:
    """An ``http://`` or ``https://`` URL with a host (and a valid port, if any)."""
    if text is None:
        return None
    expected = f'expected http://host:port/path or https://..., got "{redact_url(text)}"'
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(flag, expected)
    return text


def one_line(message: str) -> str:
    return " ".join(message.split())
