"""When the worker stops redelivering a job that keeps failing for good, and how it says so."""

from __future__ import annotations

import logging

from app.settlement_retries import passing
from ports.jobs import ProcessVmUpgrade, SendAdminNotification, SpawnVm
from ports.queue import Delivery, WorkQueue

log = logging.getLogger("lnvps.worker.give_up")

#: deliveries of one job that failed with an error that is not transient (`counts`) or that
#: the worker did not survive (`Delivery.crashed`), after which the worker stops
#: redelivering it: it is acked, logged for the operator and reported to the admins. A
#: failing job comes back every claim idle time on Redis (10 s) and after the loop's 1 s
#: pause in process, so 8 failures span about a minute and a half on Redis: long enough for
#: a passing state that answers like a permanent one (a host rebooting, a row another
#: worker is writing) to go by, short enough that a handler bug, a host that refuses for
#: good or a row that no longer fits stops hammering hosts and filling logs within minutes
#: instead of for ever. Transient failures (`passing`: storage busy, a host, provider or the
#: network down) do not count: they are retried without limit, at the queue's pace.
MAX_FAILED_DELIVERIES = 8


def counts(err: BaseException) -> bool:
    """Whether a failure counts toward MAX_FAILED_DELIVERIES: any error but a passing one."""
    return not passing(err)


def strikes(delivery: Delivery) -> int:
    """The earlier deliveries of a job that count toward MAX_FAILED_DELIVERIES.

    The queue counts a delivery when it hands it out (`Delivery.deliveries`), and records
    each failure its consumer survived, counted (`failures`) or transient (`passing`). So of
    N earlier deliveries, `failures` failed for good, `passing` failed transiently with the
    worker alive, and the rest (`crashed`) ended with no outcome: the worker died running
    the job (a segfault, an OOM kill, SIGKILL, `os._exit`), as a poison job does to every
    worker that takes it. The strikes are `failures + crashed`: a job delivered N times
    that killed the worker each time is given up after the bound, one delivered N times
    that failed transiently each time is not (its failures are all `passing`).
    """
    return delivery.failures + delivery.crashed


def poisoned(delivery: Delivery) -> bool:
    """Whether a delivery is given up before it runs: its earlier deliveries already made
    MAX_FAILED_DELIVERIES strikes, some of them (or all) with the worker dying. Any kind,
    skippable or not: a failure drops a skippable job, but a crash records no failure."""
    return strikes(delivery) >= MAX_FAILED_DELIVERIES


def _tally(delivery: Delivery, failed: int) -> str:
    return (
        f"{failed + delivery.crashed} deliveries that failed for good or that the worker did "
        f"not survive ({failed} failed; {delivery.crashed} ended with no outcome recorded, "
        f"the worker most likely killed running it: a crash, an OOM kill; {delivery.passing} "
        "transient failures not counted)"
    )


def notice(delivery: Delivery, err: BaseException | None, failed: int) -> tuple[str, str]:
    """The admins' title and message about a job given up: the job with its fields (the VM
    it is about), the queue's id, how its deliveries ended (`failed`: how many failed for
    good, this one included), the last error (None: given up before running again, its
    last deliveries killed the worker), and what happens to the work now.

    A SpawnVm is sent after a payment: the VM check (every 30 s) builds again any paid,
    unexpired VM not built yet (`handle_vm_state`), so the work is not dropped, but it will
    most likely fail the same way until someone acts. The job carries only the VM's id, not
    the payment or subscription, so the notice names the VM. A ProcessVmUpgrade's VM keeps
    its `resize_requested` mark, so the VM check sends the resize again after
    `RESIZE_GRACE` (`resend_lost_resizes`), and it will be given up (and reported) again if
    it still fails. Any other job (a deletion, a notice, an image download …) is not picked
    up again by anything but its own schedule or a new request.
    """
    job = delivery.job
    vm_id = getattr(job, "vm_id", None)
    title = f"{'' if vm_id is None else f'[VM{vm_id}] '}Job {job.kind} given up"
    lines = [
        f"The worker gave up job {job!r} (queue id {delivery.id}) after "
        f"{_tally(delivery, failed)}; it is not delivered again.",
        f"Last error: {type(err).__name__}: {err}"
        if err is not None
        else "Last error: none recorded: the worker process died running it (see its logs and "
        "exit status); it was given up before running again, so it takes down no other worker.",
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
    elif job.skippable:
        lines.append(
            "A job of this kind is sent again by its schedule or the next request; it will be "
            "given up again if it keeps failing."
        )
    else:
        lines.append("Nothing sends this job again: act on it by hand if it still matters.")
    return title, "\n".join(lines)


async def give_up(queue: WorkQueue, delivery: Delivery, err: Exception | None) -> None:
    """Ack a job that made MAX_FAILED_DELIVERIES strikes (`err`: its last failure; None
    when given up before running, `poisoned`), tell the admins with a SendAdminNotification
    job, and log it for the operator (with the traceback of `err`). A failed admin notice is
    not told about, only logged, so a notifier that always fails cannot breed notices about
    itself.

    The notice is queued by the ack itself (`WorkQueue.ack(then=...)`, one atomic step), so
    it is sent at least once: a worker dying before the ack, or a queue failing it, leaves
    the job owed, and it comes back and is given up, and told, then; once acked, the notice
    is queued, with no window in between for a crash to lose it. Only the consumer whose ack
    took the job off the queue logs and tells: two workers holding the same delivery (one
    that could not keep it within the claim idle time) give it up once.
    """
    job = delivery.job
    failed = delivery.failures + (err is not None)  # this delivery's failure included
    then = None
    if not isinstance(job, SendAdminNotification):
        title, message = notice(delivery, err, failed)
        then = SendAdminNotification(title=title, message=message)
    if not await queue.ack(delivery, then=then):
        log.warning("job %r (%s): given up or done by another worker already", job, delivery.id)
        return
    log.error(
        "OPERATOR: job %r (%s) given up after %s; not delivered again. Last error: %s",
        job,
        delivery.id,
        _tally(delivery, failed),
        "none: the worker died running it" if err is None else err,
        exc_info=err,
    )
