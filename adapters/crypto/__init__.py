"""Encryption of secrets at rest (AES-256-GCM in LNVPS's `ENC:` format)."""
