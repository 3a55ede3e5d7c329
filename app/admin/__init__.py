"""Admin use cases (api.md §9): RBAC strings, VM extension, manual completion, fee configs."""
