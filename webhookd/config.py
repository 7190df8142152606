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
    ValidationInfo,
    field_validator,
    model_validator,
)

from webhookd.catalogue import CATEGORIES, UnknownEventError, expand_subscription, payload_keys
from webhookd.filters import PatternError
from webhookd.filters import validate as validate_pattern
from webhookd.retry import DEFAULT_SCHEDULE
from webhookd.signing import SecretError, decode_secret
from webhookd.units import parse_duration, parse_size

PAYLOAD_KEYS = frozenset(category.payload_key for category in CATEGORIES)
BUILTIN = "<built-in defaults>"


class ConfigError(Exception):
    """The configuration cannot be used; the message names file, key and problem."""


def _not_supported_yet(value: Any) -> Any:
    raise ValueError("not supported yet")


def _file_mode(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    raise ValueError(f"expected an octal mode string like \"0660\", got {value!r}")


def _check_payload_key(key: str) -> None:
    if key not in PAYLOAD_KEYS:
        raise ValueError(f"unknown payload key {key!r} (one of {', '.join(sorted(PAYLOAD_KEYS))})")


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


def _network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise ValueError(f"expected a network like \"10.0.0.0/8\", got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network (CIDR)") from None


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Network = Annotated[IPNetwork, BeforeValidator(_network)]
DEFAULT_BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "0.0.0.0/8", "fe80::/10", "fd00:ec2::254/128")
)


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
    proxy: str | None = None
    blocked_networks: tuple[Network, ...] = DEFAULT_BLOCKED_NETWORKS

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, proxy: str | None) -> str | None:
        if proxy is not None:
            parts = urlsplit(proxy)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{proxy!r} is not an http(s) proxy URL")
        return proxy


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
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip.is_loopback


class WebhookConfig(_Strict):
    # Field order matters: `url` is checked last against `events` and `allow_http`.
    name: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=100)
    events: list[str] = Field(min_length=1)
    allow_http: bool = False
    url: str
    expansions: dict[str, str] | None = None
    api_version: str = Field(default="latest", pattern=r"^(latest|\d{4}-\d{2}-\d{2})$")
    authentication: Literal["none", "basic"] = "none"
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    signing_secret: SecretStr | list[SecretStr] | None = None
    signing_secret_file: Path | None = None
    compress: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    filter: dict[str, dict[str, Any]] | None = None
    ca_file: Path | None = None
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

    @field_validator("expansions")
    @classmethod
    def _expansion_keys(cls, expansions: dict[str, str] | None) -> dict[str, str] | None:
        for key in expansions or {}:
            _check_payload_key(key)
        return expansions

    @field_validator("filter")
    @classmethod
    def _patterns(cls, patterns: dict[str, dict[str, Any]] | None) -> Any:
        for key, pattern in (patterns or {}).items():
            _check_payload_key(key)
            try:
                validate_pattern(pattern, key)
            except PatternError as exc:
                raise ValueError(str(exc)) from None
        return patterns

    @field_validator("signing_secret")
    @classmethod
    def _secrets(cls, secret: SecretStr | list[SecretStr] | None) -> Any:
        for item in secret if isinstance(secret, list) else [secret] if secret else []:
            try:
                decode_secret(item.get_secret_value())
            except SecretError as exc:
                raise ValueError(str(exc)) from None
        if isinstance(secret, list) and not secret:
            raise ValueError("an empty list: leave signing_secret out instead")
        return secret

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
        if self.signing_secret is not None and self.signing_secret_file is not None:
            raise ValueError("set signing_secret or signing_secret_file, not both")
        return self


class ApiVersionConfig(_Strict):
    version: ApiVersion
    rename: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    set_default: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _paths(self) -> ApiVersionConfig:
        paths = [*self.rename, *self.rename.values(), *self.remove, *self.set_default]
        for path in paths:
            head, _, rest = path.partition(".")
            if not rest:
                raise ValueError(f"path {path!r} must start with a payload key, e.g. order.x")
            _check_payload_key(head)
        return self


class Config(_Strict):
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    defaults: DeliveryDefaults = Field(default_factory=DeliveryDefaults)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    api_versions: list[ApiVersionConfig] = Field(default_factory=list)
    distribution_centers: NotYet = None

    @model_validator(mode="after")
    def _versions(self) -> Config:
        current = self.daemon.api_version
        previous = current
        for index, entry in enumerate(self.api_versions):
            if entry.version >= current:
                raise ValueError(
                    f"api_versions[{index}].version: {entry.version} is not older than the "
                    f"daemon's api_version {current}"
                )
            if entry.version >= previous:
                raise ValueError(
                    f"api_versions[{index}].version: entries go newest first "
                    f"({entry.version} comes after {previous})"
                )
            previous = entry.version
        known = {entry.version for entry in self.api_versions} | {current}
        for index, webhook in enumerate(self.webhooks):
            if webhook.api_version not in known and webhook.api_version != "latest":
                raise ValueError(
                    f"webhooks[{index}].api_version: unknown version {webhook.api_version} "
                    f"(known: latest, {', '.join(sorted(known, reverse=True))})"
                )
        return self

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
        seen: set[str] = set()
        for webhook in webhooks:
            if webhook.name in seen:
                raise ValueError(f"webhook name {webhook.name!r} is defined twice")
            seen.add(webhook.name)
        return webhooks
