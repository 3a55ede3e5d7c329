"""Proxmox hosts stored with a clear-text `http://` API URL, which the client now refuses:
told to the operator (log and admin notice) once per worker process."""

from __future__ import annotations

import logging

from app.worker.context import WorkerDeps
from domain.clear_text import clear_text_proxmox
from domain.model import Host

log = logging.getLogger("lnvps.worker.host_urls")


def _notice(host: Host) -> tuple[str, str]:
    title = f"Proxmox host {host.name} unusable: http:// URL"
    message = (
        f"Proxmox host #{host.id} ({host.name}) has the API URL {host.ip}, which is "
        "http:// to a non-loopback address: its API token would travel in clear, so LNVPS "
        "refuses to call it and every spawn, check or change of a VM on it fails. "
        "Change its URL to https:// (in the admin API's host settings, sending its "
        "api_token along)."
    )
    return title, message


async def report_clear_text_hosts(deps: WorkerDeps) -> list[int]:
    """Log (`OPERATOR:`) and tell the admins about each Proxmox host, enabled or not, whose
    stored URL is clear text (`clear_text_url`); the ids of the hosts reported.

    Such rows were accepted before the admin API refused them and fail every host call
    since (`config_for_host`): without this the operator only sees failing jobs.
    """
    async with deps.uow_factory() as uow:
        hosts = await uow.hosts.list_all()
    reported: list[int] = []
    for host in hosts:
        if not clear_text_proxmox(host):
            continue
        title, message = _notice(host)
        log.error("OPERATOR: %s", message)
        await deps.tell_admins(title, message)
        reported.append(host.id)
    return reported
