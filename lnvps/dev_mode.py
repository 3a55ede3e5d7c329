"""When the embedded default's dev tools may run: never by accident in a production config."""

from __future__ import annotations

from lnvps.settings import Settings, SettingsError


def production_signs(settings: Settings) -> list[str]:
    """What in `settings` only a real deployment configures, by its config key: a database
    server, Redis, a fiat rail, e-mail, an encryption key file or a public address."""
    signs: list[str] = []
    db = settings.db
    if db != "memory" and not db.startswith("sqlite"):
        signs.append("db (a database server)")
    optional = {
        "redis": settings.redis,
        "revolut": settings.revolut,
        "stripe": settings.stripe,
        "bank-transfer": settings.bank_transfer,
        "smtp": settings.smtp,
        "encryption": settings.encryption,
        "public-url": settings.public_url,
        "admin-public-url": settings.admin_public_url,
    }
    signs.extend(key for key, value in optional.items() if value is not None)
    return signs


def check_dev_mode(settings: Settings) -> None:
    """Refuse a configuration that would run the dev tools where real money is taken.

    Without `lightning.lnd` the server runs the embedded default: the dev Lightning rail
    (whose invoices `lnvps dev pay` settles for free), the dev clock (`lnvps dev
    advance-clock` moves it: every subscription expires), the fixed demo rates and the demo
    catalogue. A config that also names a database server, a fiat rail, Redis, e-mail, a
    key file or a public address is a production config whose `lightning` section is
    missing or misspelt, or one for fiat only: it must say `dev: {enabled: true}` to run as
    a trial. `dev.enabled: true` next to `lightning.lnd` contradicts itself and is refused.
    A fiat-only shop says `lightning: {enabled: false}` instead (`check_lightning_off`).
    """
    if settings.lightning_off:
        check_lightning_off(settings)
        return
    if settings.lightning.lnd is not None:
        if settings.dev.enabled:
            raise SettingsError(
                "dev.enabled: true and lightning.lnd are both set: the dev tools (dev rail,"
                " dev clock, demo catalogue) never run with a real Lightning node; remove one"
            )
        return
    if settings.dev.enabled:
        return
    signs = production_signs(settings)
    if signs:
        raise SettingsError(
            "no lightning.lnd is configured, so this server would run its dev tools (the dev"
            " Lightning rail that `lnvps dev pay` settles, a clock `lnvps dev advance-clock`"
            " moves, fixed demo rates, the demo catalogue), but the configuration is a"
            f" production one ({', '.join(signs)}): configure lightning.lnd (check its"
            " spelling), set lightning: {enabled: false} to take fiat payments only, or set"
            " dev: {enabled: true} to run it as a trial"
        )


#: the settings sections of the rails a fiat-only shop may take money through
FIAT_RAILS = ("revolut", "stripe", "bank-transfer")


def fiat_rails(settings: Settings) -> list[str]:
    """The fiat rails `settings` configures, by their config key."""
    sections = {
        "revolut": settings.revolut,
        "stripe": settings.stripe,
        "bank-transfer": settings.bank_transfer,
    }
    return [key for key in FIAT_RAILS if sections[key] is not None]


def check_lightning_off(settings: Settings) -> None:
    """Refuse a fiat-only configuration (`lightning.enabled: false`) that contradicts itself.

    Lightning off runs no node and no dev rail, so a `lightning.lnd` next to it is a
    mistake either way (which one did the operator mean?), and so is `dev.enabled: true`
    (the dev tools exist to fake Lightning payments). With no fiat rail either the server
    could take no payment at all: every order would sit unpaid until it is deleted.
    """
    if settings.lightning.lnd is not None:
        raise SettingsError(
            "lightning.enabled: false and lightning.lnd are both set: a fiat-only server"
            " runs no Lightning node; remove lightning.lnd, or lightning.enabled to take"
            " Lightning payments"
        )
    if settings.dev.enabled:
        raise SettingsError(
            "lightning.enabled: false and dev.enabled: true are both set: the dev tools (dev"
            " Lightning rail, dev clock, demo catalogue) never run on a fiat-only server;"
            " remove one"
        )
    if not fiat_rails(settings):
        raise SettingsError(
            "lightning.enabled: false but no fiat rail is configured, so this server could"
            f" take no payment at all: configure at least one of {', '.join(FIAT_RAILS)}"
        )
