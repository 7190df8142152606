"""A webhook as the engine uses it: ``[defaults]`` applied, secrets read, payload
settings compiled. Built from the validated config by :func:`resolve_webhooks`."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from webhookd.catalogue import expand_subscription
from webhookd.config import Config, ConfigError
from webhookd.expansions import Tree
from webhookd.expansions import parse as parse_expansion
from webhookd.filters import Pattern
from webhookd.signing import SecretError, decode_secret
from webhookd.versions import VersionStep, steps_down_to


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
    basic_password: str | None = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    expansions: Mapping[str, Tree] = field(default_factory=dict)
    version_steps: tuple[VersionStep, ...] = ()
    filters: Mapping[str, Pattern] = field(default_factory=dict)
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)
    compress: bool = False
    ca_file: Path | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    source: str = "config"

    @property
    def shaped(self) -> bool:
        """Whether objects are changed on the way (expansions or an older version)."""
        return bool(self.expansions or self.version_steps)




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
    steps = tuple(
        VersionStep(
            entry.version, dict(entry.rename), tuple(entry.remove), dict(entry.set_default)
        )
        for entry in config.api_versions
    )
    resolved = []
    for index, spec in enumerate(config.webhooks):
        password: str | None = None
        if spec.basic_password is not None:
            password = spec.basic_password.get_secret_value()
        elif spec.basic_password_file is not None:
            password = _read_secret(
                source, f"webhooks[{index}].basic_password_file", spec.basic_password_file
            )
        where = f"webhooks[{index}]"
        keys: list[str] = []
        if isinstance(spec.signing_secret, list):
            keys = [secret.get_secret_value() for secret in spec.signing_secret]
        elif spec.signing_secret is not None:
            keys = [spec.signing_secret.get_secret_value()]
        elif spec.signing_secret_file is not None:
            text = _read_secret(source, f"{where}.signing_secret_file", spec.signing_secret_file)
            keys = [line.strip() for line in text.splitlines() if line.strip()]
        try:
            signing_keys = tuple(decode_secret(key) for key in keys)
        except SecretError as exc:
            raise ConfigError(f"{source}: {where}.signing_secret_file: {exc}") from None
        context = None
        if spec.ca_file is not None:
            context = ssl.create_default_context()
            try:
                context.load_verify_locations(cafile=spec.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"{source}: {where}.ca_file: cannot load {spec.ca_file}: {exc}"
                ) from None
        pinned = spec.api_version if spec.api_version != "latest" else config.daemon.api_version
        resolved.append(
            Webhook(
                name=spec.name,
                url=spec.url,
                events=expand_subscription(spec.events),
                subscription=tuple(spec.events),
                api_version=pinned,
                expansions={k: parse_expansion(v) for k, v in (spec.expansions or {}).items()},
                version_steps=steps_down_to(steps, pinned),
                filters=dict(spec.filter or {}),
                signing_keys=signing_keys,
                compress=spec.compress,
                ca_file=spec.ca_file,
                ssl_context=context,
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
