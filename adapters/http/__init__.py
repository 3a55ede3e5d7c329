"""aiohttp server: the LNVPS v1 user API, admin API, webhooks and NIP-98 auth."""
