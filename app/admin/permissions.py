"""Admin permission strings `resource::action` (api.md §4.2): parse, format, refuse."""

from __future__ import annotations

from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from ports.storage import Permission

#: input aliases of resource names (the reference accepts `vms` for `virtual_machines`).
_ALIASES = {"vms": AdminResource.VIRTUAL_MACHINES}


def resource_name(resource: AdminResource) -> str:
    return resource.name.lower()


def action_name(action: AdminAction) -> str:
    return action.name.lower()


def permission_text(resource: AdminResource, action: AdminAction) -> str:
    """`virtual_machines::view` (output is lower case)."""
    return f"{resource_name(resource)}::{action_name(action)}"


def parse_permission(text: str) -> Permission:
    """`resource::action`, case-insensitive; anything else is "Invalid permission format"."""
    parts = text.strip().lower().split("::")
    if len(parts) != 2:
        raise InvalidInput(f"Invalid permission format: {text}")
    res, act = parts
    resource = _ALIASES.get(res) or AdminResource.__members__.get(res.upper())
    action = AdminAction.__members__.get(act.upper())
    if resource is None or action is None:
        raise InvalidInput(f"Invalid permission format: {text}")
    return resource, action


def denied_message(resource: AdminResource, action: AdminAction) -> str:
    """The reference's text for a missing permission (403 here, D19)."""
    return f"Insufficient permissions for {permission_text(resource, action)}"
