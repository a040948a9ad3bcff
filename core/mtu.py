"""ATT MTU choices made by plugins (``mcp_ble_mtu_plan``), and what became of them.

Backends that send the Exchange MTU Request themselves (``Backend.requests_mtu``) ask the core,
through ``Backend.mtu_chooser``, once a link is up; the core runs the plan hook and remembers the
choice until the connect finishes, so the connect result can say what happened: ``asked`` (the
backend asked for the plugin's MTU; the link has the smaller of it and the peer's) or ``os``
(the operating system negotiated the MTU and no plugin could choose).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .errors import BleError
from .plans import MtuPlan

if TYPE_CHECKING:
    from .backend import Backend, LinkInfo
    from .plugin_api import PluginApp

log = logging.getLogger("mcp_ble.mtu")

#: Reads of the probe value per candidate MTU.
PROBE_READS = 4


class MtuChoices:
    def __init__(self, hook: Any, api: PluginApp) -> None:
        self.hook = hook
        self.api = api
        self.asked: dict[str, MtuPlan] = {}
        #: MTUs the probe is trying, by address: asked for without running the hook.
        self.forced: dict[str, int] = {}

    def choose(self, address: str, link: LinkInfo) -> int | None:
        """``Backend.mtu_chooser``: the plugins' choice, within 23..link.max_mtu."""
        if address in self.forced:
            return min(self.forced[address], link.max_mtu)
        plan = MtuPlan(address, link.data_length, link.max_mtu)
        self.hook.mcp_ble_mtu_plan(plan=plan, app=self.api)
        if plan.mtu is not None:
            plan.mtu = max(23, min(int(plan.mtu), link.max_mtu))
        if plan.probe:
            plan.probe = sorted({max(23, min(int(m), link.max_mtu)) for m in plan.probe})
        self.asked[address] = plan
        return plan.mtu

    async def probe(self, backend: Backend, address: str, deadline_s: float) -> None:
        """Measure each MTU the plan asked to probe on the link just made: reconnect at each,
        time ``PROBE_READS`` reads of the longest readable value on the backend's clock, and
        leave the link at the fastest. Within ``deadline_s`` seconds; a failure ends the probe
        with what was measured, and the link is made again at the best MTU so far."""
        plan = self.asked.get(address)
        if plan is None or not plan.probe or not backend.requests_mtu:
            return
        try:
            async with asyncio.timeout(deadline_s):
                await self._measure(backend, address, plan)
        except (BleError, TimeoutError) as exc:
            log.info("mtu probe of %s ended early: %s", address, exc)
        finally:
            self.forced.pop(address, None)
        if not plan.measured:
            plan.note("mtu probe: nothing measured")
            return
        best = max(plan.measured, key=lambda m: plan.measured[m])
        plan.mtu = best
        if backend.mtu(address) != best or not backend.is_connected(address):
            await self._reconnect(backend, address, best, max(deadline_s, 1.0))
        plan.note(
            "mtu probe (B/s): "
            + ", ".join(f"{m}: {plan.measured[m]:.0f}" for m in sorted(plan.measured))
        )

    async def _measure(self, backend: Backend, address: str, plan: MtuPlan) -> None:
        readable = [
            c.handle
            for service in await backend.discover(address)
            for c in service.characteristics
            if "read" in c.properties
        ]
        if not readable:
            return
        sizes = {handle: len(await backend.read(address, handle)) for handle in readable}
        handle = max(sizes, key=lambda h: sizes[h])
        for candidate in plan.probe or ():
            if backend.mtu(address) != candidate:
                await self._reconnect(backend, address, candidate, 30.0)
            start, nbytes = backend.now(), 0
            for _ in range(PROBE_READS):
                nbytes += len(await backend.read(address, handle))
            took = backend.now() - start
            if took > 0:
                plan.measured[backend.mtu(address)] = nbytes / took

    async def _reconnect(self, backend: Backend, address: str, mtu: int, timeout_s: float) -> None:
        self.forced[address] = mtu
        try:
            await backend.disconnect(address)
            await backend.connect(address, timeout_s)
        finally:
            self.forced.pop(address, None)

    def outcome(self, address: str, backend: Backend) -> tuple[str | None, list[str]]:
        """(how the link's MTU was chosen, the plugins' notes) for a connect that finished."""
        plan = self.asked.pop(address, None)
        if not backend.requests_mtu:
            return "os", []
        if plan is None or plan.mtu is None:
            return None, plan.notes if plan else []
        return "asked", plan.notes
