"""The ``webhookd`` command line: a thin layer over the library's public calls."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import IO, Any

import click
import orjson

from webhookd import __version__
from webhookd.config import ConfigError, Settings, load_config
from webhookd.units import format_duration, format_size

EXIT_USAGE = 2


def _load(config_path: str | None) -> Settings:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(f"webhookd: config error:\n{exc}", err=True)
        sys.exit(EXIT_USAGE)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $WEBHOOKD_CONFIG, then /etc/webhookd/webhookd.toml).",
)


def _config_path(ctx: click.Context, own: str | None) -> str | None:
    return own or ctx.obj.get("config_path")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.version_option(__version__, prog_name="webhookd")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """webhookd: durable webhook delivery for commerce platforms."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@main.command()
@config_option
@click.option(
    "--uvloop", "use_uvloop", is_flag=True, help="Run on uvloop (pip install webhookd[uvloop])."
)
@click.pass_context
def serve(ctx: click.Context, config_path: str | None, use_uvloop: bool) -> None:
    """Run the daemon in the foreground, logging to stdout."""
    from webhookd import logs
    from webhookd.server import AlreadyRunning, run
    from webhookd.store import StoreError

    settings = _load(_config_path(ctx, config_path))
    logs.configure(settings.daemon.log_format, settings.daemon.log_level)
    try:
        run(settings, use_uvloop=use_uvloop)
    except* AlreadyRunning as group:
        click.echo(f"webhookd: {group.exceptions[0]}", err=True)
        sys.exit(EXIT_USAGE)
    except* StoreError as group:
        click.echo(f"webhookd: {group.exceptions[0]}", err=True)
        sys.exit(EXIT_USAGE)
    except* OSError as group:
        click.echo(f"webhookd: cannot start: {group.exceptions[0]}", err=True)
        sys.exit(1)


def describe(settings: Settings) -> dict[str, Any]:
    """The effective settings, secrets hidden, in the config file's own units."""
    daemon = settings.daemon
    return {
        "source": settings.source,
        "daemon": {
            "data_dir": str(daemon.data_dir),
            "socket_dir": str(daemon.socket_dir),
            "socket_mode": f"0{daemon.socket_mode:o}",
            "socket_group": daemon.socket_group,
            "log_format": daemon.log_format or "console on a TTY, else json",
            "log_level": daemon.log_level,
            "api_version": daemon.api_version,
            "max_event_size": format_size(daemon.max_event_size),
            "synchronous": daemon.synchronous,
            "retention": format_duration(daemon.retention),
            "log_body_limit": daemon.log_body_limit,
            "shutdown_timeout": format_duration(daemon.shutdown_timeout),
        },
        "webhooks": [
            {
                "name": w.name,
                "url": w.url,
                "events": list(w.subscription),
                "resolved_events": len(w.events),
                "api_version": w.api_version,
                "authentication": "basic" if w.basic_username else "none",
                "basic_username": w.basic_username,
                "headers": {name: "***" for name, _ in w.headers},
                "timeout": format_duration(w.timeout),
                "maximum_events": w.maximum_events,
                "maximum_size": format_size(w.maximum_size),
                "linger": format_duration(w.linger),
                "concurrency": w.concurrency,
            }
            for w in settings.webhooks
        ],
    }


def _print_summary(summary: dict[str, Any]) -> None:
    click.echo(f"config: {summary['source']} (valid)")
    click.echo("[daemon]")
    for key, value in summary["daemon"].items():
        if value is not None:
            click.echo(f"  {key} = {value}")
    click.echo(f"webhooks: {len(summary['webhooks'])}")
    for webhook in summary["webhooks"]:
        click.echo(f"[[webhooks]] {webhook['name']}")
        for key, value in webhook.items():
            if key != "name" and value not in (None, {}):
                click.echo(f"  {key} = {value}")


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def check_config(
    ctx: click.Context, path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Validate the config and print the effective settings (exit 0, or 2 on errors)."""
    settings = _load(path or _config_path(ctx, config_path))
    summary = describe(settings)
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_summary(summary)


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


@main.command()
@click.argument("file", required=False, type=click.File("rb"), default="-")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def publish(ctx: click.Context, file: IO[bytes], config_path: str | None, as_json: bool) -> None:
    """Send NDJSON events (stdin by default) to the ingest socket; exit 1 if any line failed."""
    from webhookd.client import NotRunning
    from webhookd.client import publish as send

    settings = _load(_config_path(ctx, config_path))
    socket_path = settings.daemon.socket_dir.absolute() / "ingest.sock"
    try:
        report = asyncio.run(send(socket_path, _lines(file)))
    except NotRunning as exc:
        click.echo(f"webhookd: {exc}", err=True)
        sys.exit(1)
    for number, code, detail in report.errors:
        click.echo(f"line {number}: {code}: {detail}", err=True)
    counts = {"ok": report.ok, "duplicate": report.duplicate, "error": report.failed}
    if as_json:
        click.echo(orjson.dumps(counts).decode())
    else:
        click.echo(f"ok {report.ok}, duplicate {report.duplicate}, error {report.failed}")
    if report.failed:
        sys.exit(1)
