"""Delivering asynchronous invocations (``ctx.invoke_async``) on the local provider.

A function that is the target of another's ``invokes=[...]`` gets a loop in the
local services that takes its invocations from the durable queue
``sls-py-invoke-<function>`` (see :mod:`.invoking`) and runs them on the
function's worker pool (or a fresh process, with the standalone services),
with AWS's rules for asynchronous invocation:

- a failed attempt is retried after :data:`RETRY_DELAY_S` seconds, doubled
  for the next (AWS waits about one and then two minutes); after
  :data:`~.invoking.MAX_RECEIVES` attempts the invocation moves to the dead-letter
  queue ``sls-py-invoke-<function>-dlq`` (AWS: the on-failure destination);
- an attempt refused because the function is at its concurrency limit (429)
  does not count as an attempt: it is tried again shortly, as AWS retries
  throttled events;
- an invocation in flight when ``sls-py run`` stops is delivered again after
  the function's timeout (the queue's visibility timeout), so none is lost.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from sls_py.runtime import Outcome
from sls_py.spec import FunctionSpec, Spec

from .invoking import MAX_RECEIVES, RETRY_DELAY_S, invoke_queue
from .queues import QueueStore, Received, dead_letter_queue

if TYPE_CHECKING:
    from .services import LocalServices

#: seconds before a throttled (429) attempt is tried again
THROTTLE_DELAY_S = 0.2


def invoke_targets(spec: Spec) -> list[FunctionSpec]:
    """The functions some function of ``spec`` may invoke, in spec order."""
    named = {t for fn in spec.functions for t in fn.invokes}
    return [fn for fn in spec.functions if fn.name in named]


async def invoke_loop(services: LocalServices, fn: FunctionSpec) -> None:
    """Deliver ``fn``'s asynchronous invocations until cancelled."""
    store = services.driver.queue_store()
    queue = invoke_queue(fn.name)
    visibility = fn.timeout_s + 5
    services.ui.info(
        f"async invoke -> {fn.name} ({MAX_RECEIVES} attempts, retried after {RETRY_DELAY_S:g} s "
        f"and {2 * RETRY_DELAY_S:g} s where AWS waits about 1 and 2 minutes; then "
        f"{dead_letter_queue(queue)})"
    )
    await services.poll(
        fn.concurrency or 4,
        lambda: store.receive(queue, 1, visibility, MAX_RECEIVES),
        lambda got: deliver(services, fn, store, got[0]),
    )


async def deliver(
    services: LocalServices, fn: FunctionSpec, store: QueueStore, got: Received
) -> Outcome:
    """Run one asynchronous invocation; delete it, or schedule its retry."""
    message = got.message
    queue = invoke_queue(fn.name)
    source = message.attributes.get("source") or "?"
    attempt = message.receive_count
    event: dict[str, Any] = {"type": "payload", "payload": json.loads(message.body)}
    what = f"async invoke from {source} (attempt {attempt} of {MAX_RECEIVES})"
    outcome = await services._invoke(fn.name, event, what)
    if outcome.error is None:
        await asyncio.to_thread(store.delete, queue, message.id, got.receipt)
    elif outcome.error.status == 429:
        await asyncio.to_thread(
            store.retry_later, queue, message.id, got.receipt, THROTTLE_DELAY_S, count=False
        )
    elif attempt >= MAX_RECEIVES:
        services.ui.warn(
            f"async invoke of {fn.name} {message.id} failed {attempt} times; "
            f"moved to {dead_letter_queue(queue)}"
        )
        await asyncio.to_thread(store.retry_later, queue, message.id, got.receipt, 0.0)
    else:
        delay = RETRY_DELAY_S * 2 ** (attempt - 1)
        await asyncio.to_thread(store.retry_later, queue, message.id, got.receipt, delay)
    return outcome
