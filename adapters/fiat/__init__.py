"""Fiat payment rails: Revolut orders, Stripe Checkout Sessions, manual bank transfers."""
