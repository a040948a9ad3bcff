"""Which MCP session holds what: subscriptions and their buffers per session, links shared.

A session is one MCP connection on the 2025-11-25 protocol (a stdio process, an HTTP session
with its ``Mcp-Session-Id``). The 2026-07-28 protocol has no sessions (every request stands
alone), so its requests, and callers outside MCP (the CLI, plugins), share one owner: ``None``.

- A subscription belongs to the session that made it: another session gets ``not_subscribed``
  for it and sees it only as a count. Two sessions subscribing to one characteristic share the
  radio subscription (one CCCD write), each with its own buffer; the radio subscription ends when
  the last of them unsubscribes.
- Links are shared and counted per session: ``ble_disconnect`` from one session leaves a link
  that another session uses up; a link no session uses any more is left to the pool plugin,
  which closes idle links.
- When a session ends (the client closes it, or its transport drops and the HTTP session times
  out) everything only it held is released: its subscriptions end, its buffers go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .policy import current_session

if TYPE_CHECKING:
    from .app import Subscription

Owner = str | None


def current_owner() -> Owner:
    """The MCP session of the request being served (None outside any session)."""
    return current_session.get()


class Sessions:
    def __init__(self) -> None:
        #: Every subscription by (owner, address, handle), active or ended with a buffer left.
        self.owned: dict[tuple[Owner, str, int], Subscription] = {}
        #: Sessions that connected each link (or found it connected).
        self.link_users: dict[str, set[Owner]] = {}

    def mine(self, address: str, handle: int) -> Subscription | None:
        return self.owned.get((current_owner(), address, handle))

    def add(self, sub: Subscription) -> None:
        self.owned[(sub.owner, sub.address, sub.handle)] = sub

    def forget(self, sub: Subscription, radio: dict[tuple[str, int], Subscription]) -> None:
        """Drop ``sub`` from the indexes; ``radio`` (one subscription per characteristic, the one
        the radio feeds) then names another session's subscription that still receives, if any."""
        key = (sub.owner, sub.address, sub.handle)
        if self.owned.get(key) is sub:
            del self.owned[key]
        if sub in sub.peers:
            sub.peers.remove(sub)
        if radio.get((sub.address, sub.handle)) is sub:
            heir = next((p for p in sub.peers if p.active), None)
            if heir is None:
                del radio[(sub.address, sub.handle)]
            else:
                radio[(sub.address, sub.handle)] = heir

    def of(self, owner: Owner) -> list[Subscription]:
        return [s for (o, _, _), s in list(self.owned.items()) if o == owner]

    def on_link(self, address: str | None) -> list[Subscription]:
        subs = list(self.owned.values())
        return subs if address is None else [s for s in subs if s.address == address]

    def use_link(self, address: str) -> None:
        self.link_users.setdefault(address, set()).add(current_owner())

    def leave_link(self, address: str, owner: Owner) -> int:
        """Stop counting ``owner`` as a user of the link; returns how many other sessions still
        use it."""
        users = self.link_users.get(address)
        if users is None:
            return 0
        users.discard(owner)
        if not users:
            del self.link_users[address]
        return len(users)

    def link_dropped(self, address: str) -> None:
        self.link_users.pop(address, None)
