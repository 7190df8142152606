"""Config validation: every error names the file, the key path and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from webhookd.config import ConfigError
from webhookd.settings import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def hook(**overrides: Any) -> dict[str, Any]:
    webhook: dict[str, Any] = {
        "name": "erp",
        "url": "https://erp.example.com/hook",
        "events": ["order_*"],
    }
    webhook.update(overrides)
    return webhook


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "shop.toml")
    return str(caught.value)


def test_builtin_defaults_are_the_spec_defaults() -> None:
    settings = parse_config({})
    daemon = settings.daemon
    assert daemon.socket_mode == 0o660
    assert daemon.max_event_size == 1024 * 1024
    assert daemon.synchronous == "normal"
    assert daemon.retention == 30 * 86400
    assert daemon.log_body_limit == 100_000
    assert daemon.shutdown_timeout == 10
    assert daemon.api_version == "2017-03-01"
    assert settings.webhooks == ()


def test_defaults_are_inherited_and_overridden_per_webhook() -> None:
    settings = parse_config(
        {
            "defaults": {"timeout": "5s", "maximum_events": 10, "maximum_size": "1KB"},
            "webhooks": [hook(), hook(name="wms", maximum_events=3, linger="250ms")],
        }
    )
    erp, wms = settings.webhooks
    assert (erp.timeout, erp.maximum_events, erp.maximum_size, erp.linger) == (5, 10, 1000, 0)
    assert (wms.timeout, wms.maximum_events, wms.maximum_size, wms.linger) == (5, 3, 1000, 0.25)
    assert erp.api_version == "2017-03-01"  # "latest" resolves to the daemon's version
    assert erp.retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert (erp.disable_after, erp.rate_limit, erp.concurrency) == (5 * 86400, 0, 1)
    assert "order_create" in erp.events and "auto_order_create" not in erp.events


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"daemon": {"data_dri": "/x"}}, "shop.toml: daemon.data_dri: unknown key"),
        ({"deamon": {}}, "shop.toml: deamon: unknown key"),
        ({"webhooks": [hook(filter={"order": {}})]}, "shop.toml: webhooks[0].filter: order: a pattern is a non-empty table"),
        ({"webhooks": [hook(filter={"order": {"x": [{"prefx": "a"}]}})]}, "webhooks[0].filter: order.x: unknown operator 'prefx'"),
        ({"webhooks": [hook(filter={"orders": {"x": [1]}})]}, "webhooks[0].filter: unknown payload key 'orders'"),
        ({"webhooks": [hook(expansions={"orders": "items"})]}, "webhooks[0].expansions: unknown payload key 'orders'"),
        ({"webhooks": [hook(signing_secret="whsec_x")]}, "webhooks[0].signing_secret: a signing secret is"),
        ({"webhooks": [hook(signing_secret="abc")]}, "webhooks[0].signing_secret: a signing secret starts with"),
        ({"webhooks": [hook(signing_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", signing_secret_file="/x")]}, "not both"),
        ({"daemon": {"proxy": "socks5://p:1080"}}, "daemon.proxy: 'socks5://p:1080' is not an http(s) proxy URL"),
        ({"daemon": {"blocked_networks": ["10.0.0.0/8", "nonsense"]}}, "daemon.blocked_networks[1]: 'nonsense' is not an IP network"),
        ({"api_versions": [{"version": "2017-03-01"}]}, "api_versions[0].version: 2017-03-01 is not older than the daemon's api_version"),
        ({"api_versions": [{"version": "2016-01-01"}, {"version": "2016-10-01"}]}, "api_versions[1].version: entries go newest first"),
        ({"api_versions": [{"version": "2016-01-01", "remove": ["utms"]}]}, "path 'utms' must start with a payload key"),
        ({"api_versions": [{"version": "2016-01-01", "typo": 1}]}, "api_versions[0].typo: unknown key"),
        ({"defaults": {"retry_schedule": []}}, "defaults.retry_schedule: expected a non-empty list of durations"),
        ({"defaults": {"retry_schedule": ["5s", "1x"]}}, "defaults.retry_schedule: invalid duration '1x'"),
        ({"defaults": {"rate_limit": "5 per second"}}, "defaults.rate_limit: expected a rate like"),
        ({"webhooks": [hook(disable_after="0s")]}, "webhooks[0].disable_after: must be greater than zero"),
        ({"daemon": {"admin_socket_mode": "0999"}}, "daemon.admin_socket_mode: expected an octal mode"),
        ({"daemon": {"metrics_listen": "127.0.0.1:9464"}}, "daemon.metrics_listen: not supported yet"),
        ({"distribution_centers": [{"code": "DFW"}]}, "distribution_centers: not supported yet"),
        ({"defaults": {"concurrency": 0}}, "defaults.concurrency:"),
        ({"webhooks": [hook(events=["order_*", "orders_*"])]}, "webhooks[0].events: unknown event category 'orders_*'"),
        ({"webhooks": [hook(events=["order_created"])]}, "webhooks[0].events: unknown event 'order_created'"),
        ({"webhooks": [hook(events=[])]}, "webhooks[0].events:"),
        ({"webhooks": [hook(name="ERP!")]}, "webhooks[0].name:"),
        ({"webhooks": [hook(), hook()]}, "webhooks: webhook name 'erp' is defined twice"),
        ({"webhooks": [{"name": "x", "events": ["*"]}]}, "webhooks[0].url: required key is missing"),
        ({"defaults": {"timeout": "30"}}, "defaults.timeout: invalid duration '30'"),
        ({"defaults": {"timeout": "0s"}}, "defaults.timeout: must be greater than zero"),
        ({"defaults": {"maximum_size": "9XB"}}, "defaults.maximum_size: invalid size '9XB'"),
        ({"defaults": {"maximum_events": 0}}, "defaults.maximum_events:"),
        ({"daemon": {"socket_mode": "rw"}}, "daemon.socket_mode: expected an octal mode"),
        ({"daemon": {"synchronous": "off"}}, "daemon.synchronous:"),
        ({"webhooks": [hook(api_version="2016-10-01")]}, "webhooks[0].api_version: unknown version 2016-10-01 (known: latest, 2017-03-01)"),
        ({"webhooks": [hook(api_version="old")]}, "webhooks[0].api_version:"),
    ],
)
def test_errors_name_file_key_and_problem(data: dict[str, Any], expected: str) -> None:
    assert expected in error_of(data)


def test_retry_rate_and_concurrency_settings() -> None:
    settings = parse_config(
        {
            "defaults": {"retry_schedule": ["1s", "250ms"], "rate_limit": "600/m"},
            "webhooks": [hook(), hook(name="b", concurrency=8, rate_limit="0/s", disable_after="2h")],
        }
    )
    a, b = settings.webhooks
    assert a.retry_schedule == (1, 0.25) and a.rate_limit == 10
    assert (b.concurrency, b.rate_limit, b.disable_after) == (8, 0, 7200)
    assert settings.daemon.admin_socket_mode == 0o600


def test_payload_settings(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\nwhsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n"
    )
    settings = parse_config(
        {
            "api_versions": [
                {"version": "2016-10-01", "remove": ["order.utms"]},
                {"version": "2016-01-01", "rename": {"order.a": "order.b"}},
            ],
            "webhooks": [
                hook(
                    api_version="2016-10-01",
                    expansions={"order": "shipping,items.attributes"},
                    filter={"order": {"current_stage": ["Shipping Department"]}},
                    signing_secret_file=str(secrets),
                    compress=True,
                ),
                hook(name="latest", signing_secret=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
            ],
        }
    )
    pinned, latest = settings.webhooks
    assert pinned.api_version == "2016-10-01" and latest.api_version == "2017-03-01"
    assert [step.version for step in pinned.version_steps] == ["2016-10-01"]
    assert latest.version_steps == () and not latest.shaped and pinned.shaped
    assert pinned.expansions == {"order": {"shipping": {}, "items": {"attributes": {}}}}
    assert len(pinned.signing_keys) == 2 and len(latest.signing_keys) == 1
    assert pinned.compress and pinned.filters["order"] == {"current_stage": ["Shipping Department"]}
    assert "whsec" not in repr(pinned) and "signing_keys" not in repr(pinned)
    assert [str(n) for n in settings.daemon.blocked_networks] == [
        "169.254.0.0/16", "0.0.0.0/8", "fe80::/10", "fd00:ec2::254/128"
    ]


def test_ca_file_must_load(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    assert "webhooks[0].ca_file: cannot load" in error_of({"webhooks": [hook(ca_file=str(bad))]})


def test_url_rules() -> None:
    assert "must be https://" in error_of({"webhooks": [hook(url="http://erp.example.com/")]})
    assert "credentials in the URL" in error_of(
        {"webhooks": [hook(url="https://u:p@erp.example.com/")]}
    )
    assert "not an http(s) URL" in error_of({"webhooks": [hook(url="ftp://erp.example.com/")]})
    ok = [
        hook(name="loop4", url="http://127.0.0.1:8080/x"),
        hook(name="loop6", url="http://[::1]:8080/x"),
        hook(name="mapped", url="http://[::ffff:127.0.0.1]:8080/x"),
        hook(name="local", url="http://localhost/x"),
        hook(name="items", url="http://shop.example.com/x", events=["item_*"]),
        hook(name="opted", url="http://erp.example.com/x", allow_http=True),
    ]
    assert len(parse_config({"webhooks": ok}).webhooks) == 6
    # item-only means every subscribed event: one order event needs https again.
    assert "must be https://" in error_of(
        {"webhooks": [hook(url="http://shop.example.com/x", events=["item_*", "order_create"])]}
    )


def test_reserved_headers_cannot_be_overridden() -> None:
    for name in ("Authorization", "content-type", "webhook-id", "X-Webhook-Api-Version", "Host"):
        assert "cannot be overridden" in error_of({"webhooks": [hook(headers={name: "x"})]})
    assert "line break" in error_of({"webhooks": [hook(headers={"X-A": "a\r\nB: c"})]})
    settings = parse_config({"webhooks": [hook(headers={"X-Env": "prod"})]})
    assert settings.webhooks[0].headers == (("X-Env", "prod"),)


def test_basic_authentication(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = parse_config(
        {
            "webhooks": [
                hook(authentication="basic", basic_username="erp", basic_password_file=str(secret))
            ]
        }
    )
    assert settings.webhooks[0].basic_password == "s3cret"
    assert "needs basic_username" in error_of({"webhooks": [hook(authentication="basic")]})
    assert "needs one of basic_password" in error_of(
        {"webhooks": [hook(authentication="basic", basic_username="u")]}
    )
    assert "authentication is not" in error_of({"webhooks": [hook(basic_username="u")]})
    missing = error_of(
        {
            "webhooks": [
                hook(
                    authentication="basic",
                    basic_username="u",
                    basic_password_file=str(tmp_path / "nope"),
                )
            ]
        }
    )
    assert "webhooks[0].basic_password_file: cannot read" in missing


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[daemon\n")
    with pytest.raises(ConfigError, match=f"{path}: invalid TOML"):
        load_config(path)


def test_environment_variable_and_builtin_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[daemon]\nlog_level = "debug"\n')
    monkeypatch.setenv("WEBHOOKD_CONFIG", str(path))
    assert load_config().daemon.log_level == "debug"
    monkeypatch.delenv("WEBHOOKD_CONFIG")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setattr("webhookd.settings.DEFAULT_CONFIG_PATH", tmp_path / "none.toml")
    settings = load_config()
    assert settings.source == "<built-in defaults>"
    assert settings.daemon.data_dir == tmp_path / "state"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhookd", *args], capture_output=True, text=True, timeout=60
    )


def test_example_config_passes_check_config() -> None:
    result = run_cli("check-config", str(ROOT / "config.example.toml"))
    assert result.returncode == 0, result.stderr
    assert "(valid)" in result.stdout
    assert "[[webhooks]] erp" in result.stdout


def test_check_config_exits_2_with_the_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[daemon]\nsocket_mdoe = "0600"\n[[webhooks]]\nname = "a"\nurl = "x"\n')
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert f"{path}: daemon.socket_mdoe: unknown key" in result.stderr
    assert f"{path}: webhooks[0].events: required key is missing" in result.stderr
    assert run_cli("--config", str(tmp_path / "nope.toml"), "check-config").returncode == 2


def test_check_config_hides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[webhooks]]\nname = "a"\nurl = "https://a.example.com/"\nevents = ["*"]\n'
        'authentication = "basic"\nbasic_username = "u"\nbasic_password = "hunter2"\n'
        'headers = { "X-Token" = "tok-123" }\n'
    )
    result = run_cli("check-config", "--json", str(path))
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "tok-123" not in result.stdout
    assert '"X-Token": "***"' in result.stdout
