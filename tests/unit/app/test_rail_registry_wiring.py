"""The container builds the rail registry from the settings: one entry per configured rail."""

from __future__ import annotations

from pathlib import Path

from domain.enums import PaymentMethod
from lnvps.container import close_container, open_container
from lnvps.settings import load_settings


async def _rails_of(tmp_path: Path, extra: str) -> tuple[object, ...]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"db: memory\ndev:\n  state-dir: {tmp_path}\n{extra}")
    container = await open_container(load_settings(cfg, environ={}))
    try:
        rails = container.rails()
        assert container.services().rails is rails
        hooks = (rails.webhook(PaymentMethod.REVOLUT), rails.webhook(PaymentMethod.STRIPE))
        assert all(hook is not None for hook in hooks)  # verifiable even when not configured
        assert rails.webhook(PaymentMethod.LIGHTNING) is None
        return rails.offered()
    finally:
        await close_container(container)


async def test_only_lightning_without_provider_sections(tmp_path: Path) -> None:
    assert await _rails_of(tmp_path, "") == (PaymentMethod.LIGHTNING,)


async def test_each_section_adds_its_rail(tmp_path: Path) -> None:
    offered = await _rails_of(
        tmp_path,
        (
            "revolut: {token: t}\n"
            "stripe: {secret-key: sk_test_x, success-url: 'https://lnvps.test/ok'}\n"
            "bank-transfer: {account-name: LNVPS Ltd, iban: IE29AIBK93115212345678}\n"
        ),
    )
    assert offered == (
        PaymentMethod.LIGHTNING,
        PaymentMethod.REVOLUT,
        PaymentMethod.STRIPE,
        PaymentMethod.BANK_TRANSFER,
    )
