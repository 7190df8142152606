"""Finding, reading and validating the configuration file (SPEC §5)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from webhookd.config import BUILTIN, Config, ConfigError, DaemonConfig
from webhookd.webhook import Webhook, resolve_webhooks

DEFAULT_CONFIG_PATH = Path("/etc/webhookd/webhookd.toml")


@dataclass(frozen=True, slots=True)
class Settings:
    """A validated configuration and where it came from."""

    config: Config
    source: str
    webhooks: tuple[Webhook, ...]

    @property
    def daemon(self) -> DaemonConfig:
        return self.config.daemon




def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part[:1].isidentifier():
            continue  # pydantic's own markers such as "function-after[...]"
        else:
            text += f".{part}" if text else part
    return text


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        location = _format_loc(tuple(item["loc"]))
        lines.append(f"{source}: {location}: {message}" if location else f"{source}: {message}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = BUILTIN) -> Settings:
    """Validate an already-parsed TOML document."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from None
    return Settings(config=config, source=source, webhooks=resolve_webhooks(config, source))


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """``--config``, else ``$WEBHOOKD_CONFIG``, else the system file if it exists."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("WEBHOOKD_CONFIG")
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find, read and validate the configuration; built-in defaults when there is no file."""
    path = find_config_path(explicit)
    if path is None:
        return parse_config({})
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return parse_config(data, source)
