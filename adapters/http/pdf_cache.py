"""Rendered invoice PDFs kept in process: an issued invoice's document never changes, so a
repeated (or replayed) `?format=pdf` request costs no rendering."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from domain.invoice import Invoice

#: invoices whose PDF is kept; the least recently asked for is dropped first
PDF_CACHE_ENTRIES = 64


class RenderedPdfs:
    """A bounded LRU of PDFs by invoice (company and number: numbers are per company).

    Concurrent requests for one invoice share one rendering; a failed one is not kept.
    Rendering runs off the event loop (it takes tens of milliseconds).
    """

    def __init__(self, max_entries: int = PDF_CACHE_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[int, str], asyncio.Future[bytes]] = OrderedDict()

    async def get(self, invoice: Invoice, render: Callable[[Invoice], bytes]) -> bytes:
        key = (invoice.company_id, invoice.number)
        rendering = self._entries.get(key)
        if rendering is None:
            rendering = asyncio.ensure_future(asyncio.to_thread(render, invoice))
            self._entries[key] = rendering
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        try:
            return await asyncio.shield(rendering)  # a client that leaves does not cancel it
        except Exception:
            if self._entries.get(key) is rendering:
                del self._entries[key]
            raise
