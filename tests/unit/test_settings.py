"""Settings: the database URL precedence and kebab-case YAML."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lnvps.serve import admin_binding_warning, user_auth_binding
from lnvps.settings import DEFAULT_DB_URL, Settings, SettingsError, load_settings, resolve_db_url


def test_embedded_default_is_sqlite_when_nothing_is_configured() -> None:
    settings = load_settings(None, environ={})
    assert settings.db == DEFAULT_DB_URL
    assert resolve_db_url(None, settings) == DEFAULT_DB_URL


def test_config_file_then_env_then_cli_take_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("db: mysql://u:p@db:3306/lnvps\ndelete-after: 7\ntax-rate:\n  IE: 23\n")
    from_file = load_settings(cfg, environ={})
    assert from_file.db == "mysql://u:p@db:3306/lnvps"
    assert from_file.delete_after == 7
    assert from_file.tax_rate == {"IE": Decimal("23")}
    from_env = load_settings(cfg, environ={"LNVPS_DB": "sqlite:///other.db"})
    assert from_env.db == "sqlite:///other.db"
    assert resolve_db_url("mysql://x@h/db", from_env) == "mysql://x@h/db"


def test_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 0.0.0.0:9000\n")
    assert load_settings(None, environ={"LNVPS_CONFIG": str(cfg)}).listen == "0.0.0.0:9000"


def test_a_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(cfg, environ={})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_fractional_tax_rates_stay_exact(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tax-rate:\n  CH: '7.7'\n")
    assert load_settings(cfg, environ={}).tax_rate["CH"] == Decimal("7.7")


def test_lnd_redis_and_live_rates_come_from_the_reference_style_config(tmp_path: Path) -> None:
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(
        "db: mysql://root@db:3306/lnvps\n"
        "lightning:\n  lnd:\n    url: https://lnd:8080\n    cert: /etc/lnd/tls.cert\n"
        "    macaroon: /etc/lnd/admin.macaroon\n"
        "redis:\n  url: redis://redis:6379\n"
        "rates:\n  source: mempool\n"
    )
    settings = load_settings(cfg, environ={})
    assert settings.lightning.lnd is not None
    assert settings.lightning.lnd.macaroon == "/etc/lnd/admin.macaroon"
    assert settings.redis is not None and settings.redis.url == "redis://redis:6379"
    assert settings.rate_source == "mempool"
    assert not settings.is_embedded_default


def test_the_embedded_default_uses_the_dev_rail_and_fixed_demo_rates() -> None:
    settings = load_settings(None, environ={})
    assert settings.is_embedded_default
    assert settings.rate_source == "fixed"
    assert settings.rates.fixed["EUR"] == Decimal(100_000)


LND = "lightning:\n  lnd:\n    url: https://lnd:8080\n    macaroon: /etc/lnd/admin.macaroon\n"


def test_a_real_lightning_node_reads_the_live_feed_by_default(tmp_path: Path) -> None:
    """r6 F2: production without a `rates` section priced Lightning at the demo's rates."""
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(LND)
    assert load_settings(cfg, environ={}).rate_source == "mempool"
    cfg.write_text(LND + "rates:\n  url: https://mempool.internal/api/v1/prices\n")
    assert load_settings(cfg, environ={}).rate_source == "mempool"


def test_fixed_rates_with_a_real_lightning_node_must_be_asked_for(tmp_path: Path) -> None:
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(LND + "rates:\n  source: fixed\n")
    with pytest.raises(SettingsError, match="allow-fixed-in-production"):
        load_settings(cfg, environ={})
    cfg.write_text(LND + "rates:\n  source: fixed\n  allow-fixed-in-production: true\n")
    settings = load_settings(cfg, environ={})
    assert settings.rate_source == "fixed"
    # without a real node nothing needs to be asked for
    cfg.write_text("rates:\n  source: fixed\n")
    assert load_settings(cfg, environ={}).rate_source == "fixed"


def test_rate_bounds_come_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "r.yaml"
    assert load_settings(None, environ={}).rates.max_feed_age == 900
    assert load_settings(None, environ={}).rates.max_change == Decimal(20)
    cfg.write_text("rates:\n  max-feed-age: 3900\n  max-change: 12.5\n")
    rates = load_settings(cfg, environ={}).rates
    assert (rates.max_feed_age, rates.max_change) == (3900, Decimal("12.5"))
    cfg.write_text("rates:\n  max-change: null\n")
    assert load_settings(cfg, environ={}).rates.max_change is None
    for bad in ("max-change: 0", "max-feed-age: 0", "source: coingecko"):
        cfg.write_text(f"rates:\n  {bad}\n")
        with pytest.raises(SettingsError):
            load_settings(cfg, environ={})


def test_fixed_rates_keep_their_currency_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "r.yaml"
    cfg.write_text("rates:\n  source: fixed\n  fixed:\n    EUR: '95000.5'\n")
    assert load_settings(cfg, environ={}).rates.fixed == {"EUR": Decimal("95000.5")}


def test_a_worker_check_interval_must_be_positive(tmp_path: Path) -> None:
    """0 or less would run the periodic checks back to back, with no gap between them."""
    cfg = tmp_path / "config.yaml"
    for bad in ("0", "-5"):
        cfg.write_text(f"worker:\n  check-interval: {bad}\n")
        with pytest.raises(SettingsError, match="check_interval"):
            load_settings(str(cfg))
    cfg.write_text("worker:\n  check-interval: 0.5\n")
    assert load_settings(str(cfg)).worker.min_check_gap.total_seconds() == 0.25


def test_the_admin_api_has_its_own_public_url(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("public-url: https://api.example\nadmin-public-url: https://admin.example\n")
    settings = load_settings(cfg, environ={})
    assert (settings.public_url, settings.admin_public_url) == (
        "https://api.example",
        "https://admin.example",
    )
    env = {"LNVPS_ADMIN_PUBLIC_URL": "https://ops.example:8443"}
    assert load_settings(cfg, environ=env).admin_public_url == "https://ops.example:8443"
    assert load_settings(None, environ={}).admin_public_url is None
    with pytest.raises(SettingsError, match="admin-public-url must look like"):
        load_settings(None, environ={"LNVPS_ADMIN_PUBLIC_URL": "admin.example"})


def test_a_bound_user_api_beside_an_unbound_admin_api_is_warned_about() -> None:
    both = Settings(public_url="https://api.example", admin_public_url="https://admin.example")
    assert admin_binding_warning(both) is None
    assert admin_binding_warning(Settings()) is None  # neither bound: the documented default
    assert (
        admin_binding_warning(Settings(public_url="https://api.example", admin_listen="")) is None
    )
    warned = admin_binding_warning(Settings(public_url="https://api.example"))
    assert warned is not None and "admin-public-url" in warned


def test_private_nwc_relays_default_to_dev_mode_and_can_be_set(tmp_path: Path) -> None:
    assert load_settings(None, environ={}).nwc_allows_private_relays
    cfg = tmp_path / "c.yaml"
    lnd = "lightning:\n  lnd:\n    url: https://lnd:8080\n    macaroon: /m\n"
    cfg.write_text(lnd)
    assert not load_settings(cfg, environ={}).nwc_allows_private_relays
    cfg.write_text(lnd + "nwc:\n  allow-private-relays: true\n")
    assert load_settings(cfg, environ={}).nwc_allows_private_relays


def test_replay_shares_are_configurable_and_reach_the_user_apis_binding(tmp_path: Path) -> None:
    """A script signing more than 500 writes in one event window with one key needs a larger
    share (the benchmarks do); the defaults stay the documented 500 per key, 1 000 per address."""
    default = user_auth_binding(load_settings(None, environ={}), None).shares
    assert default is not None and (default.per_key, default.per_address) == (500, 1_000)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replay-shares: {per-key: 7, per-address: 9}\n")
    shares = user_auth_binding(load_settings(cfg, environ={}), None).shares
    assert shares is not None and (shares.per_key, shares.per_address) == (7, 9)
    cfg.write_text("replay-shares: {per-key: 0}\n")
    with pytest.raises(SettingsError, match="per_key"):
        load_settings(cfg, environ={})
