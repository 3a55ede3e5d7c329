"""A fiat-only shop (`lightning: {enabled: false}`): which configs start, and what is built."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from types import CoroutineType
from typing import Any, cast

import pytest

from adapters.clock.offset import OffsetClock
from adapters.lightning.dev import DevLightningNode
from adapters.rates.mempool import MempoolRateSource
from app.autorenew import NwcAutoRenewer
from app.worker.context import NoAutoRenewal
from domain.enums import PaymentMethod
from lnvps.cli import main
from lnvps.container import Container, close_container, open_container
from lnvps.dev_mode import check_dev_mode
from lnvps.serve import _background, _prepare, _summary, bitcoin_offers_warning, public_url_warning
from lnvps.settings import Settings, SettingsError, load_settings
from tests.http.apiapp import NOW
from tests.http.demo_catalogue import seed_demo

OFF = "lightning: {enabled: false}\n"
LND = "  lnd: {url: 'https://127.0.0.1:8080', macaroon: /etc/lnd/admin.macaroon}\n"
REVOLUT = "revolut: {token: sk_live, webhook-secret: wsk_live}\n"
STRIPE = "stripe: {secret-key: sk_live, webhook-secret: whsec_live}\n"
BANK = "bank-transfer: {account-name: Shop Ltd, iban: IE29AIBK93115212345678}\n"
PRODUCTION = "db: mysql://lnvps:pw@127.0.0.1:3306/lnvps\nencryption: {key-file: /etc/k}\n"


def _loop_names(container: Container, settings: Settings) -> list[str]:
    """The background loops `lnvps serve` would start (not started: closed at once)."""
    loops = _background(container, settings, asyncio.Event(), "all")
    names = [cast("CoroutineType[Any, Any, None]", loop).__name__ for loop in loops]
    for loop in loops:
        loop.close()
    return names


@pytest.fixture(autouse=True)
def _no_lnvps_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("LNVPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _settings(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return load_settings(cfg, environ={})


@pytest.mark.parametrize("rails", [REVOLUT, STRIPE, BANK, REVOLUT + STRIPE])
def test_lightning_off_with_a_fiat_rail_starts_without_any_dev_switch(
    tmp_path: Path, rails: str
) -> None:
    settings = _settings(tmp_path, PRODUCTION + OFF + rails)
    check_dev_mode(settings)  # no `dev: {enabled: true}` needed
    assert settings.lightning_off and not settings.is_embedded_default
    assert settings.rate_source == "mempool"  # real rates, not the demo's fixed ones
    assert not settings.nwc_allows_private_relays


def test_the_lightning_switch_is_a_known_key(tmp_path: Path) -> None:
    assert _settings(tmp_path, OFF + REVOLUT).unknown_keys == ()
    assert _settings(tmp_path, "lightning: {enabled: true}\n").is_embedded_default


def test_lightning_off_next_to_a_node_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, PRODUCTION + REVOLUT + "lightning:\n  enabled: false\n" + LND)
    with pytest.raises(
        SettingsError, match=re.escape("lightning.enabled: false and lightning.lnd")
    ):
        check_dev_mode(settings)


def test_lightning_off_in_dev_mode_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, OFF + REVOLUT + "dev: {enabled: true}\n")
    with pytest.raises(SettingsError, match=re.escape("dev.enabled: true are both set")):
        check_dev_mode(settings)


@pytest.mark.parametrize("others", ["", PRODUCTION, "smtp: {server: mail.example.com}\n"])
def test_lightning_off_without_a_fiat_rail_is_refused(tmp_path: Path, others: str) -> None:
    settings = _settings(tmp_path, others + OFF)
    with pytest.raises(SettingsError, match=re.escape("no fiat rail is configured")):
        check_dev_mode(settings)


def test_the_cli_refuses_a_contradictory_fiat_only_config_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(PRODUCTION + OFF)
    assert main(["--config", str(cfg), "serve"]) == 2
    assert "no fiat rail is configured" in capsys.readouterr().err


def test_the_production_refusal_names_the_fiat_only_switch(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=re.escape("lightning: {enabled: false}")):
        check_dev_mode(_settings(tmp_path, PRODUCTION + REVOLUT))


def test_dev_tools_refuse_a_fiat_only_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lnvps dev pay` / `advance-clock` belong to the embedded default only."""
    cfg = tmp_path / "fiat.yaml"
    cfg.write_text(OFF + REVOLUT + f"dev: {{state-dir: {tmp_path}}}\n")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["--config", str(cfg), "dev", "advance-clock", "40d"]) == 2
    finally:
        root.handlers[:], root.level = handlers, level
    assert "only for the embedded default" in capsys.readouterr().err


async def test_the_container_builds_no_lightning_rail_no_dev_clock_no_wallet_renewer(
    tmp_path: Path,
) -> None:
    settings = _settings(
        tmp_path,
        f"db: sqlite:///{tmp_path}/x.db\nencryption: {{key-file: {tmp_path}/k,"
        f" auto-generate: true}}\ndev: {{state-dir: {tmp_path}}}\n" + OFF + REVOLUT,
    )
    container = await open_container(settings)
    try:
        rails = container.rails()
        assert rails.lightning_off
        assert rails.offered() == (PaymentMethod.REVOLUT,)
        assert container.lightning() is None
        assert not isinstance(container.services().clock, OffsetClock)
        assert isinstance(container.rate_source(), MempoolRateSource)
        assert isinstance(container.auto_renewer(), NoAutoRenewal)
        assert container.worker_deps().auto_renewer is container.auto_renewer()
        assert container.worker_deps().lightning_address is False
        assert "lightning=off (fiat only)" in _summary(settings)
        assert public_url_warning(settings) is not None  # a production server
        names = _loop_names(container, settings)
        assert "run_settlement_listener" not in names and "run" in names
    finally:
        await close_container(container)
    assert not (tmp_path / "lnvps-dev-lightning.json").exists()


async def test_the_embedded_default_still_runs_the_dev_rail(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, f"db: sqlite:///{tmp_path}/x.db\ndev: {{state-dir: {tmp_path}}}\n"
    )
    check_dev_mode(settings)
    container = await open_container(settings)
    try:
        rails = container.rails()
        assert not rails.lightning_off and PaymentMethod.LIGHTNING in rails.offered()
        assert isinstance(container.lightning(), DevLightningNode)
        assert isinstance(container.services().clock, OffsetClock)
        assert isinstance(container.auto_renewer(), NwcAutoRenewer)
        assert container.worker_deps().lightning_address is True
        assert "lightning=dev" in _summary(settings)
        names = _loop_names(container, settings)
        assert "run_settlement_listener" in names
    finally:
        await close_container(container)
    assert Settings().is_embedded_default and not Settings().lightning_off


def test_bitcoin_priced_offers_are_warned_about() -> None:
    assert bitcoin_offers_warning([]) is None
    warning = bitcoin_offers_warning(['template 1 "Tiny"', "IP-space tier 2"])
    assert warning is not None and 'template 1 "Tiny"' in warning and "IP-space tier 2" in warning


async def test_a_fiat_only_start_warns_of_offers_priced_in_btc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(
        tmp_path,
        f"db: sqlite:///{tmp_path}/x.db\nencryption: {{key-file: {tmp_path}/k,"
        " auto-generate: true}\nrates: {source: fixed, allow-fixed-in-production: true}\n"
        + OFF
        + STRIPE,
    )
    container = await open_container(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="lnvps.serve"):
            await _prepare(settings, container)  # migrates; nothing is priced in BTC yet
            assert "priced in BTC" not in caplog.text
            demo = await seed_demo(container.services().uow_factory, NOW)
            await _prepare(settings, container)
        assert f'template {demo.yearly} "Yearly"' in caplog.text
        assert "only Lightning can charge" in caplog.text
        assert f'template {demo.tiny} "' not in caplog.text  # priced in EUR
    finally:
        await close_container(container)
