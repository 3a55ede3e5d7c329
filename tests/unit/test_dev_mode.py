"""A production config never runs the dev tools by accident (`lnvps.dev_mode`), and the config
file's unknown keys are named at start (`lnvps.config_keys`)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import attrs
import pytest

from adapters.clock.offset import OffsetClock
from domain.enums import VmHostKind
from domain.model import Host
from lnvps.cli import main
from lnvps.dev_mode import check_dev_mode, production_signs
from lnvps.dev_state import DEV_CLOCK_FILE
from lnvps.serve import dummy_hosts_warning, public_url_warning
from lnvps.settings import Settings, SettingsError, load_settings

LND = '  lnd: {url: "https://127.0.0.1:8080", macaroon: /etc/lnd/admin.macaroon}\n'

#: one production-only section each; none of them names a Lightning node
SIGNS = {
    "db": "db: mysql://lnvps:pw@127.0.0.1:3306/lnvps\n",
    "redis": "redis: {url: 'redis://127.0.0.1:6379'}\n",
    "revolut": "revolut: {token: sk_live, webhook-secret: wsk_live}\n",
    "stripe": "stripe: {secret-key: sk_live, webhook-secret: whsec_live}\n",
    "smtp": "smtp: {server: mail.example.com, sender: billing@example.com}\n",
    "encryption": "encryption: {key-file: /etc/lnvps/key}\n",
    "public-url": "public-url: https://api.example.com\n",
}


@pytest.fixture(autouse=True)
def _no_lnvps_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("LNVPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _settings(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return load_settings(cfg, environ={})


@pytest.mark.parametrize("sign", sorted(SIGNS))
def test_a_production_section_without_a_lightning_node_is_refused(
    tmp_path: Path, sign: str
) -> None:
    settings = _settings(tmp_path, SIGNS[sign])
    assert production_signs(settings) and production_signs(settings)[0].startswith(sign)
    with pytest.raises(SettingsError, match=re.escape("dev: {enabled: true}")):
        check_dev_mode(settings)


@pytest.mark.parametrize("typo", ["lighting:\n", "LIGHTNING:\n", "lightning:\n  LND:\n"])
def test_a_misspelt_lightning_section_does_not_start_the_dev_rail(
    tmp_path: Path, typo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "prod.yaml"
    lnd = LND if typo.endswith(":\n") and "LND" not in typo else "    url: x\n"
    cfg.write_text(SIGNS["db"] + SIGNS["revolut"] + typo + lnd)
    assert main(["--config", str(cfg), "serve"]) == 2
    assert "no lightning.lnd is configured" in capsys.readouterr().err


def test_dev_tools_refuse_a_production_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lnvps dev advance-clock` would move the clock of the server sharing the state folder."""
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(SIGNS["revolut"] + SIGNS["encryption"] + f"dev: {{state-dir: {tmp_path}}}\n")
    assert main(["--config", str(cfg), "dev", "advance-clock", "40d"]) == 2
    assert "no lightning.lnd is configured" in capsys.readouterr().err
    assert not (tmp_path / DEV_CLOCK_FILE).exists()
    assert OffsetClock(tmp_path / DEV_CLOCK_FILE).offset().total_seconds() == 0


def test_a_database_server_given_on_the_command_line_needs_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a config the admin command would seal secrets with a throw-away key."""
    db = "mysql://root@127.0.0.1:1/nothing"  # never opened: refused before
    assert main(["admin", "list", "--db", db]) == 2
    assert "db (a database server)" in capsys.readouterr().err
    assert not (tmp_path / "lnvps-encryption.key").exists()


def test_the_environment_database_counts_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LNVPS_DB", "mysql://root@127.0.0.1:1/nothing")
    assert main(["serve"]) == 2
    assert "no lightning.lnd is configured" in capsys.readouterr().err


def test_a_trial_says_so_and_the_embedded_default_needs_nothing(tmp_path: Path) -> None:
    trial = _settings(tmp_path, SIGNS["db"] + SIGNS["redis"] + "dev: {enabled: true}\n")
    check_dev_mode(trial)
    check_dev_mode(Settings())
    check_dev_mode(_settings(tmp_path, f"db: sqlite:///{tmp_path}/x.db\n"))
    check_dev_mode(_settings(tmp_path, SIGNS["db"] + "lightning:\n" + LND))


def test_the_dev_flag_next_to_a_lightning_node_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "dev: {enabled: true}\nlightning:\n" + LND)
    with pytest.raises(SettingsError, match="both set"):
        check_dev_mode(settings)


def test_unknown_keys_are_named_by_their_path(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        "pubic-url: https://api.example.com\nrates: {sourc: mempool, fixed: {EUR: 1}}\n"
        "tax-rate: {IE: 23}\nlightning:\n  lnd: {url: x, macaroon: y, macaroon-file: y}\n"
        "vm-hosts: {proxmox: {anything: 1}}\n",
    )
    assert settings.unknown_keys == ("pubic-url", "rates.sourc", "lightning.lnd.macaroon-file")
    assert _settings(tmp_path, SIGNS["public-url"]).unknown_keys == ()


def test_unknown_keys_are_warned_about_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "dev.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/d.db\npubic-url: https://x\n")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["--config", str(cfg), "dev", "reset-clock"]) == 0
    finally:  # the logging `main` set up, undone
        root.handlers[:], root.level = handlers, level
    assert "WARNING lnvps.cli config key 'pubic-url' is not a setting" in capsys.readouterr().err


def _host(name: str, kind: VmHostKind, enabled: bool = True) -> Host:
    return Host(
        id=1,
        kind=kind,
        region_id=1,
        name=name,
        ip="10.0.0.1",
        cpu=4,
        memory=1,
        enabled=enabled,
        api_token="",
    )


def test_production_warns_of_enabled_dummy_hosts() -> None:
    hosts = [
        _host("dummy-1", VmHostKind.DUMMY),
        _host("old-dummy", VmHostKind.DUMMY, enabled=False),
        _host("pve1", VmHostKind.PROXMOX),
    ]
    warning = dummy_hosts_warning(hosts)
    assert warning is not None and "dummy-1" in warning and "old-dummy" not in warning
    assert dummy_hosts_warning(hosts[1:]) is None


def test_production_without_a_public_url_is_warned_about(tmp_path: Path) -> None:
    production = _settings(tmp_path, "lightning:\n" + LND)
    assert "public-url is not set" in (public_url_warning(production) or "")
    assert public_url_warning(attrs.evolve(production, public_url="https://a.example")) is None
    assert public_url_warning(Settings()) is None  # the embedded default listens locally
