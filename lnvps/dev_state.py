"""Where the embedded default keeps its dev state (rail, clock, dummy host, keys): light to
import, so `lnvps dev …` commands start without the server's modules."""

from __future__ import annotations

from pathlib import Path

from lnvps.settings import Settings

DEV_LIGHTNING_FILE = "lnvps-dev-lightning.json"
DUMMY_HOST_FILE = "lnvps-dummy-vms.json"
DEV_CLOCK_FILE = "lnvps-dev-clock.json"
#: the embedded default's `ENC:` key, created on first start (D28)
DEV_ENCRYPTION_KEY_FILE = "lnvps-encryption.key"


def state_path(settings: Settings, name: str) -> Path:
    return Path(settings.dev.state_dir) / name
