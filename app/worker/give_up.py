"""When the worker stops redelivering a job that keeps failing for good, and how it says so."""

from __future__ import annotations

import logging

from app.settlement_retries import passing
from ports.jobs import ProcessVmUpgrade, SendAdminNotification, SpawnVm
from ports.queue import Delivery, WorkQueue

log = logging.getLogger("lnvps.worker.give_up")

#: failed deliveries of one job, each with an error that is not transient (`counts`), after
#: which the worker stops redelivering it: it is acked, logged for the operator and reported
#: to the admins. A failing job comes back every claim idle time on Redis (10 s) and after
#: the loop's 1 s pause in process, so 8 failures span about a minute and a half on Redis:
#: long enough for a passing state that answers like a permanent one (a host rebooting, a
#: row another worker is writing) to go by, short enough that a handler bug, a host that
#: refuses for good or a row that no longer fits stops hammering hosts and filling logs
#: within minutes instead of for ever. Transient failures (`passing`: storage busy, a host,
#: provider or the network down) do not count: they are retried without limit, at the
#: queue's pace.
MAX_FAILED_DELIVERIES = 8


def counts(err: BaseException) -> bool:
    """Whether a failure counts toward MAX_FAILED_DELIVERIES: any error but a passing one."""
    return not passing(err)


def notice(delivery: Delivery, failures: int, err: BaseException) -> tuple[str, str]:
    """The admins' title and message about a job given up: the job with its fields (the VM
    it is about), the queue's id, the last error, and what happens to the work now.

    A SpawnVm is sent after a payment: the VM check (every 30 s) builds again any paid,
    unexpired VM not built yet (`handle_vm_state`), so the work is not dropped, but it will
    most likely fail the same way until someone acts. A ProcessVmUpgrade's VM keeps its
    `resize_requested` mark, so the VM check sends the resize again after `RESIZE_GRACE`
    (`resend_lost_resizes`), and it will be given up (and reported) again if it still fails.
    Any other job (a deletion, a notice, an image download …) is not picked up again.
    """
    job = delivery.job
    vm_id = getattr(job, "vm_id", None)
    title = f"{'' if vm_id is None else f'[VM{vm_id}] '}Job {job.kind} given up"
    lines = [
        f"The worker gave up job {job!r} (queue id {delivery.id}) after {failures} failed "
        f"deliveries; it is not delivered again.",
        f"Last error: {type(err).__name__}: {err}",
    ]
    if isinstance(job, SpawnVm):
        lines.append(
            f"VM #{job.vm_id} was paid for (see the payments of its subscription) but is not "
            "built. The VM check tries to build a paid VM again on every run, and will most "
            "likely fail the same way until the cause is fixed."
        )
    elif isinstance(job, ProcessVmUpgrade):
        lines.append(
            f"The paid upgrade of VM #{job.vm_id} is not applied on its host. The VM check "
            "sends the resize again after its grace period while the VM stays marked."
        )
    else:
        lines.append("Nothing sends this job again: act on it by hand if it still matters.")
    return title, "\n".join(lines)


async def give_up(queue: WorkQueue, delivery: Delivery, failures: int, err: Exception) -> None:
    """Ack a job that failed `failures` times for good, log it for the operator with the
    traceback, and tell the admins with a SendAdminNotification job: not about a failed
    admin notice, though (that one is only logged), so a notifier that always fails cannot
    breed notices about itself."""
    job = delivery.job
    log.error(
        "OPERATOR: job %r (%s) failed %d times with errors that are not transient; "
        "given up, not delivered again. Last error: %s",
        job,
        delivery.id,
        failures,
        err,
        exc_info=err,
    )
    if not isinstance(job, SendAdminNotification):
        title, message = notice(delivery, failures, err)
        try:
            await queue.send(SendAdminNotification(title=title, message=message))
        except Exception:
            log.exception("OPERATOR: could not tell the admins that %r was given up", job)
    await queue.ack(delivery)
