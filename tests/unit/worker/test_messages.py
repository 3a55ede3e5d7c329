"""Notification texts: subject token, description block, renew hints and the npub form."""

from __future__ import annotations

from datetime import UTC, datetime

from app.worker import messages
from domain.enums import IntervalType, SubscriptionType
from domain.model import LineItem, Subscription
from domain.nip19 import npub

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _sub(**kw: object) -> Subscription:
    fields: dict[str, object] = {
        "id": 5,
        "user_id": 1,
        "company_id": 1,
        "name": "VM9 subscription",
        "created": NOW,
        "currency": "EUR",
        "expires": NOW,
    }
    fields.update(kw)
    return Subscription(**fields)  # type: ignore[arg-type]


def _item(kind: SubscriptionType, **kw: object) -> LineItem:
    fields: dict[str, object] = {
        "id": 1,
        "subscription_id": 5,
        "subscription_type": kind,
        "name": "VM9 - Tiny",
        "amount": 132,
    }
    fields.update(kw)
    return LineItem(**fields)  # type: ignore[arg-type]


def test_subject_is_the_vm_only_for_vm_only_subscriptions() -> None:
    vps, ip = _item(SubscriptionType.VPS), _item(SubscriptionType.IP_RANGE)
    assert messages.subject_of(_sub(), [vps], 9) == "VM9"
    assert messages.subject_of(_sub(), [vps, ip], 9) == "Sub #5"
    assert messages.subject_of(_sub(), [vps], None) == "Sub #5"


def test_description_block() -> None:
    sub = _sub(description="for the blog", interval_amount=3, interval_type=IntervalType.MONTH)
    items = [_item(SubscriptionType.IP_RANGE, setup_amount=500, description="a /29")]
    assert messages.describe(sub, items) == (
        "Subscription: VM9 subscription\n\nServices:\n"
        "- VM9 - Tiny — EUR 1.32 every 3 months + EUR 5.00 setup fee\n  a /29\n\n"
        "Note: for the blog"
    )


def test_an_item_in_another_currency_is_shown_in_it() -> None:
    """A custom VM's amount is in its pricing's currency (USD 42.00), which a subscription
    billing an IP range beside it does not take: it was shown as EUR 42.00."""
    vm = _item(SubscriptionType.VPS, id=1, amount=4200)
    ip = _item(SubscriptionType.IP_RANGE, id=2, name="203.0.113.8/29", amount=600)
    assert messages.describe(_sub(), [vm, ip], {1: "USD"}).splitlines()[3:] == [
        "- VM9 - Tiny — USD 42.00 per month",
        "- 203.0.113.8/29 — EUR 6.00 per month",
    ]


def test_vm_expired_notice_names_vm_deadline_and_how_to_renew() -> None:
    hint = messages.renew_hint("https://api.example.com/", _sub(), 9)
    notice = messages.vm_expired(9, NOW, 7, datetime(2026, 3, 8, 12, tzinfo=UTC), hint)
    assert notice.title == "[VM9] Expired"
    assert "2026-03-01 12:00 UTC" in notice.message
    assert "before 2026-03-08 12:00 UTC" in notice.message
    assert "https://api.example.com/api/v1/vm/9/renew" in notice.message
    assert "9@api.example.com" in notice.message


def test_npub_matches_the_nip19_example() -> None:
    key = bytes.fromhex("3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d")
    assert npub(key) == "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
