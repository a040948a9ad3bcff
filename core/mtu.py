"""ATT MTU choices made by plugins (``mcp_ble_mtu_plan``), and what became of them.

Backends that send the Exchange MTU Request themselves (``Backend.requests_mtu``) ask the core,
through ``Backend.mtu_chooser``, once a link is up; the core runs the plan hook and remembers the
choice until the connect finishes, so the connect result can say what happened: ``asked`` (the
backend asked for the plugin's MTU; the link has the smaller of it and the peer's) or ``os``
(the operating system negotiated the MTU and no plugin could choose).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plans import MtuPlan

if TYPE_CHECKING:
    from .backend import Backend, LinkInfo
    from .plugin_api import PluginApp


class MtuChoices:
    def __init__(self, hook: Any, api: PluginApp) -> None:
        self.hook = hook
        self.api = api
        self.asked: dict[str, MtuPlan] = {}

    def choose(self, address: str, link: LinkInfo) -> int | None:
        """``Backend.mtu_chooser``: the plugins' choice, within 23..link.max_mtu."""
        plan = MtuPlan(address, link.data_length, link.max_mtu)
        self.hook.mcp_ble_mtu_plan(plan=plan, app=self.api)
        if plan.mtu is not None:
            plan.mtu = max(23, min(int(plan.mtu), link.max_mtu))
        self.asked[address] = plan
        return plan.mtu

    def outcome(self, address: str, backend: Backend) -> tuple[str | None, list[str]]:
        """(how the link's MTU was chosen, the plugins' notes) for a connect that finished."""
        plan = self.asked.pop(address, None)
        if not backend.requests_mtu:
            return "os", []
        if plan is None or plan.mtu is None:
            return None, plan.notes if plan else []
        return "asked", plan.notes
