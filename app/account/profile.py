"""Edit the caller's account (api.md §6.1): contact flags, billing details, e-mail and NWC."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from email.utils import parseaddr
from enum import Enum
from typing import TypeAlias

import attrs

from app.account.verify_mail_limit import verification_mail_wait
from app.billing.errors import UserNotFound
from app.billing.price_in_force import cancel_quietly, expire_user_quotes
from app.billing.rails import PaymentRails
from domain.errors import InvalidInput, found
from domain.model import SubscriptionPayment, User
from domain.nwc_uri import PUBLIC_TLS_RELAYS, RelayPolicy, parse_nwc_uri
from domain.patch import UNSET, Maybe, Unset
from domain.tax import country_alpha3
from domain.text_rules import check_line, is_single_line
from domain.unreadable import Unreadable
from ports.clock import Clock
from ports.jobs import SendEmailVerification
from ports.queue import WorkQueue
from ports.ratelimit import RateLimiter
from ports.storage import UnitOfWorkFactory

#: nullable-patch: absent = keep, None = clear, value = set (api.md §3).
PatchText: TypeAlias = Maybe[str | None]

#: column widths of `users` (schema.md §4); longer values are refused, not truncated.
FIELD_LIMITS = {
    "name": 200,
    "address_1": 200,
    "address_2": 200,
    "city": 100,
    "state": 100,
    "postcode": 50,
    "tax_id": 50,
}
EMAIL_LIMIT = 255
#: a NWC URI with a few relays and a lud16 is a few hundred characters.
NWC_LIMIT = 2048
_HEX32 = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN_ID_HEX = 16  # the token's first 16 hex digits carry the user id (lookup without a scan)
#: the largest id a user row can have (a signed 64-bit key); 16 hex digits reach 2**64 - 1
_LARGEST_ID = 2**63 - 1


@attrs.frozen(kw_only=True)
class AccountPatch:
    """A PATCH /api/v1/account body; the two contact flags are required, the rest tri-state."""

    contact_nip17: bool
    contact_email: bool
    email: PatchText = UNSET
    country_code: PatchText = UNSET
    name: PatchText = UNSET
    address_1: PatchText = UNSET
    address_2: PatchText = UNSET
    city: PatchText = UNSET
    state: PatchText = UNSET
    postcode: PatchText = UNSET
    tax_id: PatchText = UNSET
    nwc_connection_string: PatchText = UNSET


@attrs.frozen
class AccountUpdate:
    """The saved user and, when a verification mail was queued, the link it carries."""

    user: User
    verify_link: str | None = None


def check_nwc_uri(uri: str, policy: RelayPolicy) -> None:
    """A `nostr+walletconnect://<pubkey>?relay=…&secret=<hex>` URI (NIP-47), checked offline
    with the rules the wallet client parses it by (`domain.nwc_uri`): its relays are where the
    server will connect, so a private address, or `ws://` where TLS is required, is a 400.
    """
    check_line(uri, "nwc_connection_string", NWC_LIMIT)
    parse_nwc_uri(uri, policy)


#: characters that make one address several, or a display name (`"x" <y@z>`), or a comment
_NOT_IN_ADDRESS = frozenset(',;<>"()[]\\')


def check_email(email: str) -> str:
    """The trimmed address; exactly one plain `local@domain` (no list, display name, comment
    or space), with a dot in the domain, at most `EMAIL_LIMIT` characters.

    SMTP clients expand `a@x.com, "b" <c@y.org>` into several recipients, so anything but one
    bare addr-spec would mail strangers.
    """
    email = email.strip()
    if not email:
        raise InvalidInput("Email address cannot be empty")
    if len(email) > EMAIL_LIMIT:
        raise InvalidInput(f"Email address is longer than {EMAIL_LIMIT} characters")
    if not is_single_line(email) or any(c.isspace() or c in _NOT_IN_ADDRESS for c in email):
        raise InvalidInput(
            "Invalid email address: give one plain address (name@example.com), "
            "no list, name or spaces"
        )
    local, at, domain = email.rpartition("@")
    if (
        not at
        or not local
        or "@" in local
        or "." not in domain.strip(".")
        or parseaddr(email) != ("", email)
    ):
        raise InvalidInput("Invalid email address")
    return email


def email_hash(email: str) -> bytes:
    """SHA-256 of the trimmed, lower-cased address (`users.email_hash`, schema.md)."""
    return hashlib.sha256(email.strip().lower().encode()).digest()


def new_verify_token(user_id: int) -> str:
    """64 hex digits: the user id (16) then 48 random ones, so verifying needs no table scan."""
    return f"{user_id:0{_TOKEN_ID_HEX}x}" + secrets.token_hex(24)


def with_email_to_verify(user: User, email: str) -> User | None:
    """`user` given the address `email` (checked: `check_email`) when a verification mail is
    due, whose `SendEmailVerification` the caller queues after its commit; None when `email`
    is the stored address and verified, which stays as it is.

    A new address is unverified, with a fresh verify token. The rule holds whoever changes
    the address (the user, an admin): nobody has shown yet that they read the new one, so
    notices must not go there as to a verified address. The stored address still unverified
    is mailed again, its pending token kept (the link of an earlier mail stays good; a legacy
    token `verify_email` cannot look up, or none, is replaced): the mail is queued after the
    commit, so one lost there (the queue down) is sent by repeating the request (within
    `email-verify-rate`: `verification_mail_wait`).

    `user` must be read under its lock (`Users.get_for_update`), or a concurrent change or
    verification click in between would be written back over."""
    if email == user.email:
        if user.email_verified:
            return None
        if _resolvable(user.email_verify_token, user.id):
            return user
        return attrs.evolve(user, email_verify_token=new_verify_token(user.id))
    return attrs.evolve(
        user,
        email=email,
        email_hash=email_hash(email),
        email_verified=False,
        email_verify_token=new_verify_token(user.id),
    )


def _resolvable(token: str, user_id: int) -> bool:
    """A pending token `verify_email` can find: one of ours for this user, not a legacy one."""
    return bool(token) and token.lower().startswith(f"{user_id:0{_TOKEN_ID_HEX}x}")


def verify_link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/api/v1/account/verify-email?token={token}"


def _text(field: str, value: PatchText, current: str | None) -> str | None:
    if isinstance(value, Unset):
        return current
    if value is None:
        return None
    return check_line(value, field, FIELD_LIMITS[field])


def _country(value: PatchText, current: str | None) -> str | None:
    """ISO 3166-1 alpha-3 as stored (alpha-2 accepted, any case); `""`/null clear it and an
    unknown code is a 400 (the reference silently stored null, losing the user's input)."""
    if isinstance(value, Unset):
        return current
    if value is None:
        return None
    return check_country(value)


def check_country(value: str) -> str | None:
    """A country code as stored: ISO 3166-1 alpha-3 (alpha-2 accepted, any case), `""` None;
    an unknown code is a 400."""
    if not value.strip():
        return None
    code = country_alpha3(value) if len(value) <= 8 else None
    if code is None:
        raise InvalidInput(f"Unknown country code: {value[:8]!r} (ISO 3166-1 alpha-3 expected)")
    return code


#: what API answers show of a stored wallet string: its scheme and the start of the wallet key.
NWC_MASK_KEEP = 4
#: what they show of one that cannot be decrypted (lost or rotated key): no usable wallet
UNREADABLE_NWC = "(unreadable: connect your wallet again)"
_ELLIPSIS = "\u2026"


def mask_nwc(value: str | Unreadable | None) -> str | None:
    """D28: `nostr+walletconnect://abcd…` — enough to recognise the wallet, never the secret;
    `UNREADABLE_NWC` for a string that cannot be decrypted (no usable wallet)."""
    if isinstance(value, Unreadable):
        return UNREADABLE_NWC
    if not value:
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        return _ELLIPSIS
    return f"{scheme}://{rest[:NWC_MASK_KEEP]}{_ELLIPSIS}"


def _nwc(
    value: PatchText, current: str | Unreadable | None, policy: RelayPolicy
) -> str | Unreadable | None:
    """The wallet string after a PATCH; the masked form a GET showed, sent back as clients echo
    the whole account, leaves the stored string as it is (one that cannot be decrypted too:
    restoring the old key would bring it back)."""
    if isinstance(value, Unset):
        return current
    if (current or isinstance(current, Unreadable)) and value == mask_nwc(current):
        return current
    if value is None or value == "":
        return None
    check_nwc_uri(value, policy)
    return value.strip()


async def update_account(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    queue: WorkQueue,
    user_id: int,
    patch: AccountPatch,
    *,
    public_url: str,
    rails: PaymentRails | None = None,
    nwc_relays: RelayPolicy = PUBLIC_TLS_RELAYS,
    mail_limiter: RateLimiter | None = None,
) -> AccountUpdate:
    """Apply a PATCH in the reference's order (§6.1): NWC, tax id, e-mail, contact check.

    A new or changed address is stored unverified with a fresh token and a
    `SendEmailVerification` job is queued after the commit; the unchanged address, still
    unverified, is mailed again (`with_email_to_verify`). The mail is queued only within
    `mail_limiter`'s buckets for the user and for the address (`verification_mail_wait`):
    past them the change is still saved (clients send the whole account on every save) and
    the address stays unverified, mailed by the same request once the buckets refill.
    `email: null` may not remove an
    address (400) but is accepted as "no change" from a user who has none (an echoed GET).
    The user's row is locked first, so an admin's change or a verification click running at
    the same time is not written over (nor this change by them).

    A new tax country makes every pending renewal quote of the user charge the wrong tax:
    they are expired in the same transaction and cancelled at their provider after (D23).
    A wallet string must name relays `nwc_relays` allows (the server connects to them).
    """
    nwc_value = patch.nwc_connection_string
    async with uow_factory() as uow:
        user = found(await uow.users.get_for_update(user_id), UserNotFound("User not found"))
        nwc = _nwc(nwc_value, user.nwc_connection_string, nwc_relays)
        tax_id = _text("tax_id", patch.tax_id, user.billing_tax_id)
        if tax_id is not None:
            tax_id = tax_id.strip() or None
        email, verified, token = user.email, user.email_verified, user.email_verify_token
        send = False
        if patch.email is None and user.email:
            raise InvalidInput("Email address is required and cannot be removed")
        if isinstance(patch.email, str):
            pending = with_email_to_verify(user, check_email(patch.email))
            if pending is not None:
                email, verified = pending.email, pending.email_verified
                token, send = pending.email_verify_token, True
        if patch.contact_email and not email and not _kept_unreadable(email, user):
            raise InvalidInput("An email address is required to enable email notifications")
        updated = attrs.evolve(
            user,
            email=email,
            email_verified=verified,
            email_verify_token=token,
            email_hash=user.email_hash if isinstance(email, Unreadable) else _hash_of(email),
            contact_nip17=patch.contact_nip17,
            contact_email=patch.contact_email,
            country_code=_country(patch.country_code, user.country_code),
            billing_name=_text("name", patch.name, user.billing_name),
            billing_address_1=_text("address_1", patch.address_1, user.billing_address_1),
            billing_address_2=_text("address_2", patch.address_2, user.billing_address_2),
            billing_city=_text("city", patch.city, user.billing_city),
            billing_state=_text("state", patch.state, user.billing_state),
            billing_postcode=_text("postcode", patch.postcode, user.billing_postcode),
            billing_tax_id=tax_id,
            nwc_connection_string=nwc,
        )
        # a new VAT id or country is not the one an operator validated (reverse charge)
        updated = attrs.evolve(
            updated,
            billing_vat_validated=user.billing_vat_validated
            and tax_id == user.billing_tax_id
            and updated.country_code == user.country_code,
        )
        await uow.users.update(updated)
        expired: list[SubscriptionPayment] = []
        if country_alpha3(updated.country_code) != country_alpha3(user.country_code) or (
            updated.billing_vat_validated != user.billing_vat_validated
        ):
            expired = await expire_user_quotes(uow, user.id, clock.now())
        await uow.commit()
    await cancel_quietly(rails, expired)
    if not send or not email:
        return AccountUpdate(updated)
    if await verification_mail_wait(mail_limiter, user_id, email_hash(email)):
        return AccountUpdate(updated)  # logged there; the answer stays the schema's `null`
    await queue.send(SendEmailVerification(user_id=user_id))
    return AccountUpdate(updated, verify_link(public_url, token))


def _kept_unreadable(email: str | Unreadable, user: User) -> bool:
    """An address that cannot be decrypted, left as it is with `contact_email` as it was: the
    user echoing their account is not refused for it (they see no address; notices are not
    mailed, and the log says why, until they set one)."""
    return isinstance(email, Unreadable) and user.contact_email


def _hash_of(email: str) -> bytes | None:
    return email_hash(email) if email else None


class VerifyOutcome(Enum):
    VERIFIED = "verified"
    INVALID = "invalid"


async def verify_email(uow_factory: UnitOfWorkFactory, token: str) -> VerifyOutcome:
    """Mark the address of the user holding `token` verified and spend the token (single use).

    The user's row is locked before the token is compared: an address changed meanwhile (by
    the user or an admin) has a new token, so the link of the old one is refused (INVALID)
    instead of putting the old address back, verified."""
    token = token.strip().lower()
    if not _HEX32.fullmatch(token):
        return VerifyOutcome.INVALID
    user_id = int(token[:_TOKEN_ID_HEX], 16)
    if not 0 < user_id <= _LARGEST_ID:  # no such user, and storage binds no bigger number
        return VerifyOutcome.INVALID
    async with uow_factory() as uow:
        user = await uow.users.get_for_update(user_id)
        if user is None or not user.email_verify_token:
            return VerifyOutcome.INVALID
        if not hmac.compare_digest(user.email_verify_token.lower(), token):
            return VerifyOutcome.INVALID
        await uow.users.update(attrs.evolve(user, email_verified=True, email_verify_token=""))
        await uow.commit()
    return VerifyOutcome.VERIFIED
