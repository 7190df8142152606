"""The TOML configuration of SPEC §5 as frozen, strict pydantic models.

Every webhook inherits ``[defaults]``; :func:`resolve_webhooks` turns the file's
view into :class:`Webhook` records that the engine uses. Keys whose behaviour is
not built yet are refused (``webhooks[0].filter: not supported yet``) rather than
accepted and ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from webhookd.catalogue import UnknownEventError, expand_subscription, payload_keys
from webhookd.retry import DEFAULT_SCHEDULE
from webhookd.units import parse_duration, parse_size

DEFAULT_CONFIG_PATH = Path("/etc/webhookd/webhookd.toml")
BUILTIN = "<built-in defaults>"


class ConfigError(Exception):
    """The configuration cannot be used; the message names file, key and problem."""


def _not_supported_yet(value: Any) -> Any:
    raise ValueError("not supported yet")


def _file_mode(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    raise ValueError(f"expected an octal mode string like \"0660\", got {value!r}")


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")
_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _rate(value: object) -> float:
    """Requests per second from ``"<integer>/(s|m|h)"``; 0 means no limit."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a rate like \"50/s\" or \"600/m\", got {value!r}")
    return int(match.group(1)) / _RATE_UNITS[match.group(2)]


def _schedule(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of durations, e.g. [\"5s\", \"5m\"]")
    return tuple(parse_duration(step) for step in value)


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
Size = Annotated[int, BeforeValidator(parse_size), Field(ge=1)]
FileMode = Annotated[int, BeforeValidator(_file_mode)]
NotYet = Annotated[Any, AfterValidator(_not_supported_yet)]
Concurrency = Annotated[int, Field(ge=1, le=1000)]
Rate = Annotated[float, BeforeValidator(_rate)]
Schedule = Annotated[tuple[float, ...], BeforeValidator(_schedule)]
ApiVersion = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_dir(variable: str) -> Path:
    # systemd may pass several colon-separated directories; the first is ours.
    value = os.environ.get(variable, "").split(":")[0]
    return Path(value) if value else Path(".webhookd")


class DaemonConfig(_Strict):
    data_dir: Path = Field(default_factory=lambda: _env_dir("STATE_DIRECTORY"))
    socket_dir: Path = Field(default_factory=lambda: _env_dir("RUNTIME_DIRECTORY"))
    socket_mode: FileMode = 0o660
    socket_group: str | None = None
    admin_socket_mode: FileMode = 0o600
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_listen: NotYet = None
    api_version: ApiVersion = "2017-03-01"
    max_event_size: Size = 1024 * 1024
    synchronous: Literal["normal", "full"] = "normal"
    retention: PositiveDuration = 30 * 86400.0
    log_body_limit: int = Field(default=100_000, ge=0)
    shutdown_timeout: Duration = 10.0
    proxy: NotYet = None
    blocked_networks: NotYet = None


class DeliveryDefaults(_Strict):
    timeout: PositiveDuration = 30.0
    maximum_events: int = Field(default=100, ge=1)
    maximum_size: Size = 900 * 1024
    linger: Duration = 0.0
    concurrency: Concurrency = 1
    rate_limit: Rate = 0.0
    retry_schedule: Schedule = DEFAULT_SCHEDULE
    disable_after: PositiveDuration = 5 * 86400.0


RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "content-length",
        "host",
        "user-agent",
        "authorization",
        "x-webhook-api-version",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookConfig(_Strict):
    # Field order matters: `url` is checked last against `events` and `allow_http`.
    name: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=100)
    events: list[str] = Field(min_length=1)
    allow_http: bool = False
    url: str
    expansions: NotYet = None
    api_version: str = "latest"
    authentication: Literal["none", "basic"] = "none"
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    signing_secret: NotYet = None
    signing_secret_file: NotYet = None
    compress: Literal[False] = False
    headers: dict[str, str] = Field(default_factory=dict)
    filter: NotYet = None
    ca_file: NotYet = None
    # Inherited from [defaults] when absent.
    timeout: PositiveDuration | None = None
    maximum_events: int | None = Field(default=None, ge=1)
    maximum_size: Size | None = None
    linger: Duration | None = None
    concurrency: Concurrency | None = None
    rate_limit: Rate | None = None
    retry_schedule: Schedule | None = None
    disable_after: PositiveDuration | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        try:
            expand_subscription(events)
        except UnknownEventError as exc:
            raise ValueError(str(exc)) from None
        return events

    @field_validator("url")
    @classmethod
    def _url_rules(cls, url: str, info: ValidationInfo) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r} is not an http(s) URL")
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL are refused: use authentication = \"basic\"")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            events = info.data.get("events")
            item_only = events is not None and payload_keys(expand_subscription(events)) == {
                "item"
            }
            if not (item_only or info.data.get("allow_http")):
                raise ValueError(
                    "must be https:// (plain http is allowed for a loopback host, for "
                    "item-only subscriptions, or with allow_http = true)"
                )
        return url

    @field_validator("api_version")
    @classmethod
    def _only_latest(cls, version: str) -> str:
        if version != "latest":
            raise ValueError("pinning an older API version is not supported yet")
        return version

    @field_validator("headers")
    @classmethod
    def _custom_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
                raise ValueError(f"header {name!r} is set by webhookd and cannot be overridden")
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} has a line break in its value")
        return headers

    @model_validator(mode="after")
    def _authentication(self) -> WebhookConfig:
        credentials = (self.basic_username, self.basic_password, self.basic_password_file)
        if self.authentication == "basic":
            if not self.basic_username:
                raise ValueError("authentication = \"basic\" needs basic_username")
            if (self.basic_password is None) == (self.basic_password_file is None):
                raise ValueError(
                    "authentication = \"basic\" needs one of basic_password or "
                    "basic_password_file"
                )
        elif any(value is not None for value in credentials):
            raise ValueError("basic_* keys are set but authentication is not \"basic\"")
        return self


class Config(_Strict):
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    defaults: DeliveryDefaults = Field(default_factory=DeliveryDefaults)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    api_versions: NotYet = None
    distribution_centers: NotYet = None

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
        seen: set[str] = set()
        for webhook in webhooks:
            if webhook.name in seen:
                raise ValueError(f"webhook name {webhook.name!r} is defined twice")
            seen.add(webhook.name)
        return webhooks


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook with its defaults applied and its secrets read: what the engine uses."""

    name: str
    url: str
    events: frozenset[str]
    subscription: tuple[str, ...]
    api_version: str
    timeout: float
    maximum_events: int
    maximum_size: int
    linger: float
    concurrency: int
    rate_limit: float
    retry_schedule: tuple[float, ...]
    disable_after: float
    basic_username: str | None
    basic_password: str | None
    headers: tuple[tuple[str, str], ...]
    source: str = "config"


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


def _read_secret(source: str, key: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: {key}: cannot read {path}: {exc.strerror}") from None
    secret = text.strip()
    if not secret:
        raise ConfigError(f"{source}: {key}: {path} is empty")
    return secret


def resolve_webhooks(config: Config, source: str) -> tuple[Webhook, ...]:
    """Apply ``[defaults]`` to every webhook and read its secret files."""
    defaults = config.defaults
    resolved = []
    for index, spec in enumerate(config.webhooks):
        password: str | None = None
        if spec.basic_password is not None:
            password = spec.basic_password.get_secret_value()
        elif spec.basic_password_file is not None:
            password = _read_secret(
                source, f"webhooks[{index}].basic_password_file", spec.basic_password_file
            )
        resolved.append(
            Webhook(
                name=spec.name,
                url=spec.url,
                events=expand_subscription(spec.events),
                subscription=tuple(spec.events),
                api_version=config.daemon.api_version,
                timeout=spec.timeout if spec.timeout is not None else defaults.timeout,
                maximum_events=spec.maximum_events or defaults.maximum_events,
                maximum_size=spec.maximum_size or defaults.maximum_size,
                linger=spec.linger if spec.linger is not None else defaults.linger,
                concurrency=spec.concurrency or defaults.concurrency,
                rate_limit=spec.rate_limit if spec.rate_limit is not None else defaults.rate_limit,
                retry_schedule=spec.retry_schedule or defaults.retry_schedule,
                disable_after=spec.disable_after or defaults.disable_after,
                basic_username=spec.basic_username,
                basic_password=password,
                headers=tuple(spec.headers.items()),
            )
        )
    return tuple(resolved)


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
