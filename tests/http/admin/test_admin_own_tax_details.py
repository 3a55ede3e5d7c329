"""No admin validates their own VAT id (reverse charge: no VAT on their own quotes), nor changes
the VAT id or country of their validated account past the rule their own edit follows (r7 #4);
another admin may."""

from __future__ import annotations

from typing import Any

from domain.model import User
from tests.http.admin.adminapp import AdminWorld
from tests.nostr_signing import NostrKey

MALLORY = NostrKey.from_seed(77)
REFUSED = {
    "error": "Admins cannot validate a VAT id, nor change a validated one's VAT id or country, "
    "for their own account: another admin must do it"
}
ACCOUNT = {
    "contact_nip17": True,
    "contact_email": False,
    "country_code": "DE",
    "name": "Mallory GmbH",
    "address_1": None,
    "address_2": None,
    "state": None,
    "city": None,
    "postcode": None,
    "tax_id": "DE811907980",
    "nwc_connection_string": None,
}


async def _support_admin(world: AdminWorld) -> int:
    """MALLORY, a customer in Germany with a VAT id, holds users::view and users::update."""
    role = await world.ok(
        "POST", "/roles", json={"name": "support", "permissions": ["users::view", "users::update"]}
    )
    r = await world.user.call("PATCH", "/api/v1/account", key=MALLORY, json=ACCOUNT)
    assert r.status == 200, await r.text()
    me = await _me(world)
    await world.ok("POST", f"/users/{me.id}/roles", json={"role_id": role["data"]["id"]})
    return me.id


async def _me(world: AdminWorld) -> User:
    async with world.api.store() as uow:
        me = await uow.users.get_by_pubkey(MALLORY.pubkey)
    assert me is not None
    return me


async def _patch(world: AdminWorld, user_id: int, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await world.call("PATCH", f"/users/{user_id}", MALLORY, json=body)
    return resp.status, await resp.json()


async def test_an_admin_cannot_validate_their_own_vat_id(world: AdminWorld) -> None:
    me = await _support_admin(world)
    assert await _patch(world, me, {"billing_vat_validated": True}) == (403, REFUSED)
    assert await _patch(world, me, {"billing_vat_validated": True, "billing_name": "x"}) == (
        403,
        REFUSED,
    )
    after = await _me(world)
    assert not after.billing_vat_validated and after.billing_name == "Mallory GmbH"
    # what the user may do on their own account stays free: a name, a country, a VAT id
    await world.ok("PATCH", f"/users/{me}", MALLORY, json={"country_code": "FR"})
    await world.ok("PATCH", f"/users/{me}", MALLORY, json={"billing_tax_id": "FR40303265045"})
    assert (await _me(world)).country_code == "FRA"
    # another admin may validate it
    await world.ok("PATCH", f"/users/{me}", json={"billing_vat_validated": True})
    assert (await _me(world)).billing_vat_validated


async def test_nor_move_a_validated_id_or_country_of_their_own(world: AdminWorld) -> None:
    """The user's own edit of a validated VAT id or country clears the validation; the admin
    API's keeps it, so on one's own account it is refused, as is clearing it."""
    me = await _support_admin(world)
    await world.ok("PATCH", f"/users/{me}", json={"billing_vat_validated": True})
    for body in (
        {"country_code": "FR"},
        {"billing_tax_id": "DE999999999"},
        {"billing_vat_validated": False},
    ):
        assert await _patch(world, me, body) == (403, REFUSED), body
    after = await _me(world)
    assert (after.country_code, after.billing_tax_id) == ("DEU", "DE811907980")
    assert after.billing_vat_validated
    # the same country in another spelling, and other fields, are no change of tax
    await world.ok("PATCH", f"/users/{me}", MALLORY, json={"country_code": "DE"})
    await world.ok("PATCH", f"/users/{me}", MALLORY, json={"billing_city": "Berlin"})
    assert (await _me(world)).billing_city == "Berlin"
