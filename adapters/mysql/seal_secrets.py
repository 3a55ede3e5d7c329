"""Start-up pass that seals secret columns still holding plain text from before D28."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql import tables as t
from ports.secrets import SecretBox

#: Secret columns sealed retroactively. Payment `external_data` is left out on purpose: a
#: legacy `vm_payment` row and its copy in `subscription_payment` must stay byte for byte
#: equal (D18), and an invoice string is not a credential.
RETRO_SEALED: dict[str, tuple[str, ...]] = {
    "users": ("email", "nwc_connection_string"),
    "user_ssh_key": ("key_data",),
    "vm_host": ("api_token", "ssh_key"),
}
ENC_PREFIX = "ENC:"


async def seal_plaintext_secrets(engine: AsyncEngine, box: SecretBox, batch: int = 500) -> int:
    """Encrypt every plain-text value of the secret columns; returns how many were sealed.

    Rows written before encryption was always on (an adopted LNVPS database, or our own
    embedded default before D28) would otherwise keep a spending credential in clear until
    their next write. Each batch is one transaction; an update only applies while the value
    is still the plain text read, so a concurrent write of a sealed value is never undone.
    """
    sealed = 0
    for table_name, columns in RETRO_SEALED.items():
        table = t.metadata.tables[table_name]
        for name in columns:
            column = table.c[name]
            last_id = 0
            while True:
                async with engine.begin() as conn:
                    query = (
                        select(table.c.id, column)
                        .where(table.c.id > last_id, column.is_not(None))
                        .where(column.not_like(f"{ENC_PREFIX}%"))
                        .order_by(table.c.id)
                        .limit(batch)
                    )
                    rows = (await conn.execute(query)).all()
                    for row_id, value in rows:
                        if value.startswith(ENC_PREFIX):
                            continue
                        await conn.execute(
                            update(table)
                            .where(table.c.id == row_id, column == value)
                            .values({name: box.encrypt(value)})
                        )
                        sealed += 1
                if len(rows) < batch:
                    break
                last_id = rows[-1][0]
    return sealed
