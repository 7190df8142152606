"""JSON views of settings and state, in the config file's key names and units.

Shared by ``check-config``, the admin API and the CLI; secrets never appear here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from webhookd.model import WebhookState
from webhookd.settings import Settings
from webhookd.units import format_duration, format_size
from webhookd.webhook import Webhook

MASK = "***"


def timestamp(moment: float | None) -> str | None:
    """RFC 3339 in UTC, or None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def format_rate(per_second: float) -> str:
    if per_second == int(per_second):
        return f"{int(per_second)}/s"
    per_minute = per_second * 60
    if abs(per_minute - round(per_minute)) < 1e-9:
        return f"{round(per_minute)}/m"
    return f"{round(per_second * 3600)}/h"


def webhook_settings(webhook: Webhook) -> dict[str, Any]:
    return {
        "name": webhook.name,
        "url": webhook.url,
        "events": list(webhook.subscription),
        "api_version": webhook.api_version,
        "authentication": "basic" if webhook.basic_username else "none",
        "basic_username": webhook.basic_username,
        "headers": {name: MASK for name, _ in webhook.headers},
        "timeout": format_duration(webhook.timeout),
        "maximum_events": webhook.maximum_events,
        "maximum_size": format_size(webhook.maximum_size),
        "linger": format_duration(webhook.linger),
        "concurrency": webhook.concurrency,
        "rate_limit": format_rate(webhook.rate_limit),
        "retry_schedule": [format_duration(step) for step in webhook.retry_schedule],
        "disable_after": format_duration(webhook.disable_after),
        "expansions": {key: _paths(tree) for key, tree in webhook.expansions.items()},
        "filter": dict(webhook.filters),
        "signing_secret": [MASK] * len(webhook.signing_keys),
        "compress": webhook.compress,
        "ca_file": str(webhook.ca_file) if webhook.ca_file else None,
    }


def _paths(tree: dict[str, Any], prefix: str = "") -> str:
    """An expansion tree back into its comma list."""
    parts = []
    for name, sub in tree.items():
        parts.append(_paths(sub, f"{prefix}{name}.") if sub else f"{prefix}{name}")
    return ",".join(parts)


def webhook_state(state: WebhookState, pending: int) -> dict[str, Any]:
    return {
        "disabled": state.disabled,
        "disabled_reason": state.disabled_reason,
        "consecutive_failures": state.consecutive_failures,
        "next_retry_after": timestamp(state.next_retry_after),
        "last_success_at": timestamp(state.last_success_at),
        "pending": pending,
    }


def status_word(state: WebhookState) -> str:
    if state.disabled:
        return "disabled"
    if state.consecutive_failures:
        return "retrying"
    return "active"


def settings_summary(settings: Settings) -> dict[str, Any]:
    """The effective settings of ``check-config``."""
    daemon = settings.daemon
    return {
        "source": settings.source,
        "daemon": {
            "data_dir": str(daemon.data_dir),
            "socket_dir": str(daemon.socket_dir),
            "socket_mode": f"0{daemon.socket_mode:o}",
            "socket_group": daemon.socket_group,
            "admin_socket_mode": f"0{daemon.admin_socket_mode:o}",
            "log_format": daemon.log_format or "console on a TTY, else json",
            "log_level": daemon.log_level,
            "api_version": daemon.api_version,
            "max_event_size": format_size(daemon.max_event_size),
            "synchronous": daemon.synchronous,
            "retention": format_duration(daemon.retention),
            "log_body_limit": daemon.log_body_limit,
            "shutdown_timeout": format_duration(daemon.shutdown_timeout),
            "proxy": daemon.proxy,
            "blocked_networks": [str(network) for network in daemon.blocked_networks],
        },
        "webhooks": [webhook_settings(webhook) for webhook in settings.webhooks],
    }
