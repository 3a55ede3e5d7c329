"""The worker's jobs as typed commands, one frozen class per kind of the reference (§9.1)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from domain.upgrade import UpgradeConfig

#: field metadata of a field the reference's job does not have: left out of JSON when None
OURS = {"ours": True}


class InvalidJob(ValueError):
    """Not a job of the reference's `WorkJob` set, or a field of the wrong type."""


def _int(_: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidJob(f"job field {field.name!r} must be an integer, got {value!r}")


def _opt_int(owner: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _int(owner, field, value)


def _text(_: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidJob(f"job field {field.name!r} must be a string, got {value!r}")


def _opt_text(owner: object, field: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(owner, field, value)


def _upgrade(_: object, field: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, UpgradeConfig):
        raise InvalidJob(f"job field {field.name!r} must be an UpgradeConfig, got {value!r}")


@attrs.frozen
class Job:
    """Base of every job; `kind` is the reference's variant name (the class name)."""

    #: a failure of these is acked and dropped; any other failed job is delivered again
    #: (given up after a bound of non-transient failures: `app.worker.give_up`).
    skippable: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return type(self).__name__


# --- jobs without fields: `"CheckVms"` on the wire -----------------------------------------


@attrs.frozen
class PatchHosts(Job):
    """Refresh host sizes and firewall rules."""


@attrs.frozen
class CheckVms(Job):
    """The periodic check of every VM (§9.5)."""

    skippable: ClassVar[bool] = True


@attrs.frozen
class CheckNostrDomains(Job):
    """Outside billing scope."""

    skippable: ClassVar[bool] = True


@attrs.frozen
class CheckSubscriptions(Job):
    """The periodic lifecycle run (§9.3)."""

    skippable: ClassVar[bool] = True


# --- jobs with fields: `{"SpawnVm":{"vm_id":7}}` on the wire -------------------------------


@attrs.frozen(kw_only=True)
class CheckVm(Job):
    """Compare one VM with its host (§9.6)."""

    skippable: ClassVar[bool] = True
    vm_id: int = attrs.field(validator=_int)


@attrs.frozen(kw_only=True)
class SpawnVm(Job):
    """Build (or re-check) a paid VM on its host (§9.7)."""

    vm_id: int = attrs.field(validator=_int)


@attrs.frozen(kw_only=True)
class SendNotification(Job):
    """Deliver a notice to one user (§12.1)."""

    user_id: int = attrs.field(validator=_int)
    message: str = attrs.field(validator=_text)
    title: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True)
class SendAdminNotification(Job):
    """Deliver a notice to every admin."""

    message: str = attrs.field(validator=_text)
    title: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True)
class BulkMessage(Job):
    """Outside billing scope."""

    subject: str = attrs.field(validator=_text)
    message: str = attrs.field(validator=_text)
    admin_user_id: int = attrs.field(validator=_int)


@attrs.frozen(kw_only=True)
class DeleteVm(Job):
    """An admin's deletion of a VM. Ours, left out of the message when unset: `request`, the
    admin request's id, recorded with the deletion; `requested`, when it was asked for (unix
    seconds): a deletion recorded since then is the one asked for (a second delivery, or a
    second click, does not delete again a VM a late payment restored, D24), and a Purchase
    or Renewal paid since then is one that raced it (the VM comes back, D24)."""

    vm_id: int = attrs.field(validator=_int)
    reason: str | None = attrs.field(default=None, validator=_opt_text)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)
    request: str | None = attrs.field(default=None, validator=_opt_text, metadata=OURS)
    requested: int | None = attrs.field(default=None, validator=_opt_int, metadata=OURS)


@attrs.frozen(kw_only=True)
class StartVm(Job):
    """An admin's start of a VM (`reason` is ours; the reference ignores it)."""

    skippable: ClassVar[bool] = True
    vm_id: int = attrs.field(validator=_int)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)
    reason: str | None = attrs.field(default=None, validator=_opt_text, metadata=OURS)


@attrs.frozen(kw_only=True)
class StopVm(Job):
    """An admin's stop of a VM (`reason` is ours; the reference ignores it)."""

    skippable: ClassVar[bool] = True
    vm_id: int = attrs.field(validator=_int)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)
    reason: str | None = attrs.field(default=None, validator=_opt_text, metadata=OURS)


@attrs.frozen(kw_only=True)
class ProcessVmUpgrade(Job):
    """Resize a VM after its upgrade was paid (§8.4)."""

    vm_id: int = attrs.field(validator=_int)
    config: UpgradeConfig = attrs.field(validator=_upgrade)


@attrs.frozen(kw_only=True)
class ConfigureVm(Job):
    """Push a VM's configuration to its host."""

    vm_id: int = attrs.field(validator=_int)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)


@attrs.frozen(kw_only=True)
class AssignVmIp(Job):
    """Outside billing scope."""

    vm_id: int = attrs.field(validator=_int)
    ip_range_id: int | None = attrs.field(default=None, validator=_opt_int)
    ip: str | None = attrs.field(default=None, validator=_opt_text)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)


@attrs.frozen(kw_only=True)
class UnassignVmIp(Job):
    """Outside billing scope."""

    assignment_id: int = attrs.field(validator=_int)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)


@attrs.frozen(kw_only=True)
class UpdateVmIp(Job):
    """Outside billing scope."""

    assignment_id: int = attrs.field(validator=_int)
    admin_user_id: int | None = attrs.field(default=None, validator=_opt_int)


@attrs.frozen(kw_only=True)
class ProcessVmRefund(Job):
    """Outside billing scope (the reference always fails it)."""

    vm_id: int = attrs.field(validator=_int)
    admin_user_id: int = attrs.field(validator=_int)
    refund_from_date: str | None = attrs.field(default=None, validator=_opt_text)
    reason: str | None = attrs.field(default=None, validator=_opt_text)
    payment_method: str = attrs.field(validator=_text)
    lightning_invoice: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True)
class CreateVm(Job):
    """An admin's order of a VM for a user (§6.3)."""

    user_id: int = attrs.field(validator=_int)
    template_id: int = attrs.field(validator=_int)
    image_id: int = attrs.field(validator=_int)
    ssh_key_id: int = attrs.field(validator=_int)
    ref_code: str | None = attrs.field(default=None, validator=_opt_text)
    admin_user_id: int = attrs.field(validator=_int)
    reason: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True)
class SendEmailVerification(Job):
    """Mail a user the link that verifies their e-mail address."""

    user_id: int = attrs.field(validator=_int)
    verify_url: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True)
class DownloadOsImages(Job):
    """Fetch one OS image (or all of them: None) to the hosts (or one host: `host_id`, ours)."""

    image_id: int | None = attrs.field(default=None, validator=_opt_int)
    host_id: int | None = attrs.field(default=None, validator=_opt_int, metadata=OURS)


#: every job class, keyed by its kind (the reference's variant name)
JOB_TYPES: dict[str, type[Job]] = {
    cls.__name__: cls
    for cls in (
        PatchHosts,
        CheckVms,
        CheckNostrDomains,
        CheckSubscriptions,
        CheckVm,
        SpawnVm,
        SendNotification,
        SendAdminNotification,
        BulkMessage,
        DeleteVm,
        StartVm,
        StopVm,
        ProcessVmUpgrade,
        ConfigureVm,
        AssignVmIp,
        UnassignVmIp,
        UpdateVmIp,
        ProcessVmRefund,
        CreateVm,
        SendEmailVerification,
        DownloadOsImages,
    )
}
JOB_KINDS = frozenset(JOB_TYPES)
#: jobs without fields: serialised as a bare string, e.g. `"CheckVms"`.
UNIT_KINDS = frozenset(kind for kind, cls in JOB_TYPES.items() if not attrs.fields(cls))
SKIPPABLE_KINDS = frozenset(kind for kind, cls in JOB_TYPES.items() if cls.skippable)
