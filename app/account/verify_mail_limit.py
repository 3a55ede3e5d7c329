"""How often a verification mail may be sent: per user and per target address."""

from __future__ import annotations

import logging

from ports.ratelimit import RateLimiter

log = logging.getLogger("lnvps.account")


async def verification_mail_wait(
    limiter: RateLimiter | None, user_id: int, address_hash: bytes, *, per_user: bool = True
) -> float:
    """0.0 when the verification mail to the address hashing to `address_hash`
    (`profile.email_hash`) may be queued now, else the seconds until it may; a token is
    taken from each bucket asked.

    Two buckets of the one `email-verify-rate` limiter: the user's (`user:<id>`), so one key
    looping the request sends a few mails, and the address's (`email:<hash hex>`: trimmed and
    lower-cased, and no address in a Redis key), so many keys naming one stranger's address
    send a few mails between them. The user's bucket is asked first: a user past their own
    limit does not use up the address's. `per_user=False` (an admin's change) asks only the
    address's bucket. A refusal leaves the address stored unverified; the same request after
    the wait sends it.
    """
    if limiter is None:
        return 0.0
    if per_user:
        wait = await limiter.acquire(f"user:{user_id}")
        if wait > 0:
            log.warning(
                "verification mail for user %s not sent: user past email-verify-rate, "
                "next in %.0f s",
                user_id,
                wait,
            )
            return wait
    wait = await limiter.acquire("email:" + address_hash.hex())
    if wait > 0:
        log.warning(
            "verification mail for user %s not sent: address past email-verify-rate, "
            "next in %.0f s",
            user_id,
            wait,
        )
    return wait
