"""Nostr Wallet Connect (NIP-47) client: URI parsing, NIP-04 encryption, relay round trip."""
