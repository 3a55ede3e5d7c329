"""Nostr Wallet Connect (NIP-47): URI parsing, NIP-44 v2 / NIP-04 encryption, relay round trips."""
