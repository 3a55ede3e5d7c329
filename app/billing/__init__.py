"""Billing use cases: order, renew, upgrade and complete payments (architecture.md, Use cases)."""
