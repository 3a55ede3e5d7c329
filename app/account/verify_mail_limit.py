"""How often a verification mail may be sent: per user and per target address."""

from __future__ import annotations

import logging

from ports.ratelimit import RateLimiter

log = logging.getLogger("lnvps.account")


async def verification_mail_wait(
    limiter: RateLimiter | None, user_id: int, address_hash: bytes, *, per_user: bool = True
) -> float:
    """0.0 when the verification mail to the address hashing to `address_hash`
    (`profile.email_hash`) may be queued now, else the seconds until it may.

    Two buckets of the one `email-verify-rate` limiter, asked together (a token from each,
    or from none): the user's (`user:<id>`), so one key looping the request sends a few
    mails, and the address's (`email:<hash hex>`: trimmed and lower-cased, and no address in
    a Redis key), so many keys naming one stranger's address send a few mails between them.
    `per_user=False` (an admin's change) asks only the address's bucket. A refusal leaves the
    address stored unverified; the same request after the wait sends it.
    """
    if limiter is None:
        return 0.0
    address = "email:" + address_hash.hex()
    if per_user:
        wait = await limiter.acquire(f"user:{user_id}", wider=[(address, 1)])
    else:
        wait = await limiter.acquire(address)
    if wait > 0:
        log.warning(
            "verification mail for user %s not sent: user or address past email-verify-rate, "
            "next in %.0f s",
            user_id,
            wait,
        )
    return wait
