"""The ``webhookd`` command line: a thin layer over the library's public calls."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import IO, Any

import click
import orjson

from webhookd import __version__
from webhookd.config import ConfigError
from webhookd.settings import Settings, load_config
from webhookd.views import settings_summary

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
            if key != "name" and value not in (None, {}, []):
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
    summary = settings_summary(settings)
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
        click.echo(str(exc), err=True)
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


def _admin(ctx: click.Context, config_path: str | None, method: str, path: str) -> Any:
    """Call the running daemon's admin API; one-line errors, exit 1 when it is not running."""
    from webhookd.client import NotRunning, admin_request

    settings = _load(_config_path(ctx, config_path))
    socket_path = settings.daemon.socket_dir.absolute() / "admin.sock"
    try:
        status, data = asyncio.run(admin_request(socket_path, method, path))
    except NotRunning as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if status >= 400:
        click.echo(f"webhookd: {data.get('detail', data)}", err=True)
        sys.exit(1)
    return data


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    header = [column.upper() for column in columns]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    for line in [header, *cells]:
        padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(padded).rstrip())


@main.command()
@config_option
@json_option
@click.pass_context
def status(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Per webhook: state, pending, consecutive failures, next retry, last success."""
    data = _admin(ctx, config_path, "GET", "/v1/status")
    if as_json:
        _echo_json(data)
        return
    click.echo(f"webhookd {data['version']}, pid {data['pid']}, up {data['uptime']:.0f}s")
    columns = ["name", "state", "pending", "consecutive_failures", "next_retry_after",
               "last_success_at"]
    _table(data["webhooks"], columns)


@main.group()
def webhooks() -> None:
    """List, show, enable and disable webhooks."""


@webhooks.command("list")
@config_option
@json_option
@click.pass_context
def webhooks_list(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Every webhook with its state."""
    data = _admin(ctx, config_path, "GET", "/v1/webhooks")
    if as_json:
        _echo_json(data)
        return
    for row in data:
        row["state"] = "disabled" if row["disabled"] else "enabled"
    _table(data, ["name", "state", "pending", "consecutive_failures", "url"])


def _show(data: dict[str, Any]) -> None:
    for key, value in data.items():
        click.echo(f"{key} = {value if value is not None else '-'}")


def _change(
    ctx: click.Context, name: str, config_path: str | None, as_json: bool, action: str
) -> None:
    data = _admin(ctx, config_path, "POST", f"/v1/webhooks/{name}/{action}")
    if as_json:
        _echo_json(data)
    else:
        state = "disabled" if data["disabled"] else "enabled"
        click.echo(f"{name}: {state}, {data['pending']} pending")


@webhooks.command("show")
@click.argument("name")
@config_option
@json_option
@click.pass_context
def webhooks_show(ctx: click.Context, name: str, config_path: str | None, as_json: bool) -> None:
    """One webhook's settings and state."""
    data = _admin(ctx, config_path, "GET", f"/v1/webhooks/{name}")
    if as_json:
        _echo_json(data)
    else:
        _show(data)


@webhooks.command("enable")
@click.argument("name")
@config_option
@json_option
@click.pass_context
def webhooks_enable(ctx: click.Context, name: str, config_path: str | None, as_json: bool) -> None:
    """Resume a disabled webhook where it stopped (also for webhooks from the file)."""
    _change(ctx, name, config_path, as_json, "enable")


@webhooks.command("disable")
@click.argument("name")
@config_option
@json_option
@click.pass_context
def webhooks_disable(ctx: click.Context, name: str, config_path: str | None, as_json: bool) -> None:
    """Stop sending to a webhook; its events keep queueing."""
    _change(ctx, name, config_path, as_json, "disable")
