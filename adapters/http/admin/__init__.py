"""The LNVPS v1 admin API (api.md §9) at `/api/admin/v1`: NIP-98 plus RBAC on every route."""
