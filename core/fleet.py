"""Several radios as one backend: adapters, remote HCI controllers and Bluetooth proxies.

``[[radios]]`` in the settings names each radio and its backend. :class:`Fleet` is itself a
:class:`~.backend.Backend`, so the core runs on it as on one radio:

- **Scans** run on every ready radio at once and merge into one stream; each advertisement
  carries its radio's name (``Advertisement.radio``) and the tracker keeps RSSI and last-heard
  time per radio, and which radio hears the device best (core/tracker.py).
- **Connects** go to the radio that hears the device best recently and has a free slot (the
  slots a radio reports, capped by its ``slots`` setting, against the links and connects it
  holds). A failed attempt moves the next attempt to the next radio; whether and when that
  attempt is made is the retry plugin's decision, as for one radio. A link stays on its radio:
  every operation on it goes there.
- **Health** is per radio: a lost radio ends its own links (reason ``radio <name> lost: ...``)
  and its reports stop counting; the others keep serving. The fleet is down only when every
  radio is.
- **Time** is the first radio's clock: radios of one process share it (simulated radios of one
  world share the world's clock; real radios all use ``time.monotonic()``).

Home Assistant's ``habluetooth`` does slot tracking and best-path choice for bleak scanners; the
README ("Many radios") says why it does not fit these backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from .backend import Backend, NotifyCallback
from .errors import BleError, DeviceNotFound, EveryRadioFull, NotConnected
from .models import Advertisement, BackendInfo, GattService, ScanFilter
from .plugin_api import RadioView
from .radio import RadioHealth, RadioState
from .tracker import RADIO_FRESH_S, DeviceRecord

log = logging.getLogger("mcp_ble.fleet")

#: What the fleet knows of who heard a device: radio name -> (RSSI, last heard), or None.
Hearing = Callable[[str], "dict[str, tuple[float, float]] | None"]
#: Told when a radio changes state: ``listener(radio, state, reason)``.
RadioListener = Callable[[str, RadioState, str], None]


@dataclass(eq=False)
class Radio:
    """One radio of the fleet and what the fleet holds on it."""

    name: str
    backend: Backend
    #: The links it may hold at once by the settings (None: what it reports, or no limit).
    cap: int | None = None
    links: set[str] = field(default_factory=set)
    connecting: set[str] = field(default_factory=set)
    connects: int = 0
    connect_failures: int = 0

    def slots(self) -> tuple[int, int | None]:
        """(used, limit): the links and connects it holds, or what it reports in use when that
        is more (a proxy shared with other clients); the limit it reports, capped by the
        settings (None: unknown, so never counted full)."""
        used = len(self.links) + len(self.connecting)
        limit = self.cap
        reported = self.backend.connection_slots()
        if reported is not None:
            used = max(used, reported[0])
            limit = reported[1] if limit is None else min(limit, reported[1])
        return used, limit

    def free(self) -> bool:
        used, limit = self.slots()
        return limit is None or used < limit

    def describe_slots(self) -> str:
        used, limit = self.slots()
        return f"{used}/{limit if limit is not None else '?'}"


class FleetHealth(RadioHealth):
    """The fleet's health: ready while any radio is; lost (or recovering) when none is."""

    def __init__(self, radios: list[Radio]) -> None:
        super().__init__()
        self.radios = radios

    def update(self) -> None:
        members = [r.backend.health for r in self.radios]
        if any(h.ready for h in members):
            self._set("ready", "")
            return
        recovering = any(h.state == "recovering" for h in members)
        state: RadioState = "recovering" if recovering else "lost"
        reason = "; ".join(f"{r.name}: {r.backend.health.reason}" for r in self.radios)
        was_ready = self.ready
        if was_ready:
            self.losses += 1
        self._set(state, reason)
        signal, self._signal = self._signal, None
        if was_ready and signal is not None and not signal.done():
            signal.set_result(reason)

    def unavailable(self) -> BleError:  # type: ignore[override]
        from .errors import BackendUnavailable

        return BackendUnavailable(
            f"Every radio is down ({self.reason})",
            "wait and retry: ble_status lists each radio, and one that is back serves again; "
            "links and subscriptions were ended and must be made again",
        )


class Fleet(Backend):
    """Radios behind one Backend. Build with the started-or-not radios, then ``start``."""

    def __init__(self, radios: list[Radio]) -> None:
        if not radios:
            raise ValueError("a fleet needs at least one radio")
        self.radios = radios
        self.by_name = {r.name: r for r in radios}
        #: Reports carry their radio only when there are several (a fleet of one is a named
        #: radio with a slot cap: nothing to choose between).
        self.several = len(radios) > 1
        #: Which radio each link is on.
        self.link_radio: dict[str, Radio] = {}
        #: Radios that failed a connect to an address during the connect under way.
        self._tried: dict[str, list[str]] = {}
        #: The radio the last connect attempt to an address went to.
        self.last_radio: dict[str, str] = {}
        #: Who heard a device (the tracker's per-radio reports); set by the core.
        self.hearing: Hearing = lambda address: None
        self.listeners: list[RadioListener] = []
        #: Each radio's part of the scans under way (ended when the radio is lost).
        self._scanning: dict[str, set[asyncio.Task[None]]] = {r.name: set() for r in radios}
        self._health = FleetHealth(radios)
        for radio in radios:
            radio.backend.health.name = radio.name
            radio.backend.on_disconnect = self._dropped(radio)
            radio.backend.health.listeners.append(self._state_listener(radio))

    # ------------------------------------------------------------------ the Backend contract

    @property
    def health(self) -> RadioHealth:
        return self._health

    def health_for(self, address: str) -> RadioHealth:
        radio = self.link_radio.get(address)
        return radio.backend.health if radio is not None else self._health

    @property
    def first(self) -> Backend:
        return self.radios[0].backend

    def now(self) -> float:
        return self.first.now()

    async def sleep(self, seconds: float) -> None:
        await self.first.sleep(seconds)

    async def sleep_background(self, seconds: float) -> None:
        await self.first.sleep_background(seconds)

    @property
    def requests_mtu(self) -> bool:  # type: ignore[override]
        return all(r.backend.requests_mtu for r in self.radios)

    @property
    def pair_on_connect(self) -> bool:
        return any(getattr(r.backend, "pair_on_connect", False) for r in self.radios)

    def info(self) -> BackendInfo:
        infos = [(r.name, r.backend.info()) for r in self.radios]
        return BackendInfo(
            "fleet",
            simulated=all(info.simulated for _, info in infos),
            details={name: info.name for name, info in infos},
        )

    async def start(self) -> None:
        """Start every radio. One that cannot start counts as lost and is re-acquired in the
        background while the others serve; if none starts, the first error is raised."""
        for radio in self.radios:
            radio.backend.mtu_chooser = self.mtu_chooser
        results = await asyncio.gather(
            *(r.backend.start() for r in self.radios), return_exceptions=True
        )
        failed = [(r, e) for r, e in zip(self.radios, results, strict=True) if e is not None]
        for _, error in failed:
            if not isinstance(error, Exception):
                raise error
        if len(failed) == len(self.radios):
            raise _named(*failed[0])
        for radio, error in failed:
            detail = getattr(error, "what", None) or f"{type(error).__name__}: {error}"
            backend = radio.backend  # taken again by starting it, with the usual backoff
            backend.health.lost(
                f"it did not start: {detail}", backend.start, backend.sleep_background
            )

    async def stop(self) -> None:
        for radio in self.radios:
            await radio.backend.health.close()
            with contextlib.suppress(Exception):
                await radio.backend.stop()

    def is_connected(self, address: str) -> bool:
        radio = self.link_radio.get(address)
        return radio is not None and radio.backend.is_connected(address)

    # ------------------------------------------------------------------ radios coming and going

    def _dropped(self, radio: Radio) -> Callable[[str, str], None]:
        def dropped(address: str, reason: str) -> None:
            if self.link_radio.get(address) is radio:
                del self.link_radio[address]
                radio.links.discard(address)
                self.on_disconnect(address, reason)

        return dropped

    def _state_listener(self, radio: Radio) -> Callable[[RadioState, str], None]:
        def changed(state: RadioState, reason: str) -> None:
            if state == "lost":
                for task in self._scanning[radio.name]:
                    task.cancel()  # a radio that went away hears nothing more
                why = f"radio {radio.name} lost: {reason}"
                for address in sorted(radio.links):
                    if self.link_radio.get(address) is radio:
                        del self.link_radio[address]
                    self.on_disconnect(address, why)
                radio.links.clear()
            for listener in list(self.listeners):
                try:
                    listener(radio.name, state, reason)
                except Exception:
                    log.exception("fleet radio listener failed")
            self._health.update()

        return changed

    # ------------------------------------------------------------------ scanning

    async def scan(
        self, duration_s: float, scan_filter: ScanFilter
    ) -> AsyncIterator[Advertisement]:
        """Every ready radio scans for ``duration_s``; their reports arrive as heard, each
        marked with its radio. A radio whose scan fails drops out of this scan; the scan fails
        only if every radio's does."""
        live = [r for r in self.radios if r.backend.health.ready]
        if not live:
            raise self._health.unavailable()
        queue: asyncio.Queue[Advertisement | None] = asyncio.Queue()
        several = self.several
        errors: list[tuple[Radio, BaseException]] = []

        async def pump(radio: Radio) -> None:
            stream = radio.backend.scan(duration_s, scan_filter)
            health = radio.backend.health
            try:
                async for adv in stream:
                    if not health.ready:
                        break  # lost while the report was on its way
                    if several:
                        adv.radio = radio.name
                    queue.put_nowait(adv)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("radio %s: scan failed: %s", radio.name, exc)
                errors.append((radio, exc))
            finally:
                queue.put_nowait(None)
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(BaseException):
                        await aclose()

        loop = asyncio.get_running_loop()
        tasks = []
        for radio in live:
            task = loop.create_task(pump(radio))
            self._scanning[radio.name].add(task)
            task.add_done_callback(self._scanning[radio.name].discard)
            tasks.append(task)
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                else:
                    yield item
            if errors and len(errors) == len(live):
                raise _named(*errors[0])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ routing

    def begin_connect(self, address: str) -> None:
        """A new connect to ``address`` starts: every radio may be tried again, and none has
        taken an attempt of it yet."""
        self._tried.pop(address, None)
        self.last_radio.pop(address, None)

    def candidates(self, address: str) -> list[Radio]:
        """Ready radios that heard ``address``, in the order a connect tries them: those not
        yet tried in this connect first, then those with a free slot, then the ones that heard
        it recently (within RADIO_FRESH_S of the latest report), strongest first; at equal
        strength the one that heard it first, as the tracker names the best radio."""
        if not self.several:
            return [r for r in self.radios if r.backend.health.ready]
        heard = self.hearing(address) or {}
        tried = self._tried.get(address, [])
        latest = max((t for _, t in heard.values()), default=0.0)
        first = {name: i for i, name in enumerate(heard)}  # the tracker keeps them in order

        def order(radio: Radio) -> tuple[bool, bool, bool, float, int]:
            rssi, at = heard[radio.name]
            stale = at < latest - RADIO_FRESH_S
            return (radio.name in tried, not radio.free(), stale, -rssi, first[radio.name])

        ready = [r for r in self.radios if r.name in heard and r.backend.health.ready]
        return sorted(ready, key=order)

    def more_radios(self, address: str) -> bool:
        """Whether a ready radio that heard ``address`` has not been tried in this connect."""
        tried = self._tried.get(address, [])
        return any(r.name not in tried and r.free() for r in self.candidates(address))

    def preview(self, address: str) -> str | None:
        """The radio the next connect attempt to ``address`` would go to, if any (the pool
        plugin counts that radio's links)."""
        try:
            return self.choose(address).name
        except BleError:
            return None

    def hears(self, address: str) -> bool:
        """Whether a ready radio heard ``address`` (one radio: whether it is ready)."""
        if not self.several:
            return self._health.ready
        heard = self.hearing(address) or {}
        return any(r.backend.health.ready for r in self.radios if r.name in heard)

    def choose(self, address: str) -> Radio:
        """The radio the next connect attempt to ``address`` goes to, or the error saying why
        there is none."""
        ranked = self.candidates(address)
        if not ranked:
            heard = self.hearing(address) or {}
            gone = [f"{r.name} ({r.backend.health.state})" for r in self.radios if r.name in heard]
            raise DeviceNotFound(
                f"No ready radio has heard {address}"
                + (f"; it was heard by {', '.join(gone)}" if gone else ""),
                "run ble_scan: the radios still up listen for it",
            )
        free = [r for r in ranked if r.free()]
        if not free:
            raise EveryRadioFull(
                f"Every radio that hears {address} is full: "
                + ", ".join(f"{r.name} {r.describe_slots()}" for r in ranked),
                "disconnect a link you no longer need (ble_connections shows each link's "
                "radio), then connect again: a slot frees only when a link ends",
            )
        tried = self._tried.setdefault(address, [])
        if all(r.name in tried for r in free):
            tried.clear()  # every radio had its turn: start over in the same order
        return free[0]

    async def connect(self, address: str, timeout_s: float) -> None:
        """One attempt, on the radio :meth:`choose` names. While other radios that hear the
        device remain untried, the attempt gets an equal share of the time left, so a radio
        that cannot reach the device leaves time for the next."""
        radio = self.choose(address)
        tried = self._tried.get(address, [])
        others = sum(
            1
            for r in self.candidates(address)
            if r is not radio and r.name not in tried and r.free()
        )
        timeout_s = timeout_s / (1 + others)
        self.last_radio[address] = radio.name
        radio.connecting.add(address)
        radio.connects += 1
        try:
            await radio.backend.connect(address, timeout_s)
        except BaseException:
            radio.connect_failures += 1
            self._tried.setdefault(address, []).append(radio.name)
            raise
        finally:
            radio.connecting.discard(address)
        self._tried.pop(address, None)
        radio.links.add(address)
        self.link_radio[address] = radio

    def link_backend(self, address: str) -> Backend:
        """The backend of the radio holding the link to ``address``."""
        return self._link(address)

    def radio_of(self, address: str) -> str | None:
        """The name of the radio holding the link to ``address``."""
        radio = self.link_radio.get(address)
        return radio.name if radio is not None else None

    def _link(self, address: str) -> Backend:
        radio = self.link_radio.get(address)
        if radio is None:
            raise NotConnected(f"{address} is not connected", "call ble_connect first")
        return radio.backend

    # ------------------------------------------------------------------ operations on a link

    async def disconnect(self, address: str) -> None:
        radio = self.link_radio.pop(address, None)
        if radio is None:
            return
        radio.links.discard(address)
        await radio.backend.disconnect(address)

    async def discover(self, address: str) -> list[GattService]:
        return await self._link(address).discover(address)

    def mtu(self, address: str) -> int:
        return self._link(address).mtu(address)

    async def read(self, address: str, handle: int) -> bytes:
        return await self._link(address).read(address, handle)

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        await self._link(address).write(address, handle, data, response)

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        return await self._link(address).read_descriptor(address, handle)

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        await self._link(address).write_descriptor(address, handle, data)

    async def start_notify(self, address: str, handle: int, callback: NotifyCallback) -> None:
        await self._link(address).start_notify(address, handle, callback)

    async def stop_notify(self, address: str, handle: int) -> None:
        await self._link(address).stop_notify(address, handle)

    async def pair(self, address: str) -> None:
        await self._link(address).pair(address)


def _named(radio: Radio, error: BaseException) -> BaseException:
    """``error`` saying which radio it comes from."""
    if isinstance(error, BleError):
        error.what = f"radio {radio.name}: {error.what}"
        error.args = (f"{error.what}. {error.hint}" if error.hint else error.what,)
    return error


def fleet_views(fleet: Fleet, recent: Iterable[DeviceRecord]) -> list[RadioView]:
    """Each radio of ``fleet`` as plugins and status see it; ``recent``: the devices heard
    lately (a radio's count is those it heard among them). With several radios a device
    counts only for the radios in its ``heard_by``: one heard only by a radio since lost counts
    for none; a fleet of one marks no report with its radio, so every device is its own."""
    heard = dict.fromkeys(fleet.by_name, 0)
    only = () if fleet.several else (fleet.radios[0].name,)
    for record in recent:
        for name in record.heard_by if fleet.several and record.heard_by else only:
            if name in heard:
                heard[name] += 1
    views = []
    for radio in fleet.radios:
        used, limit = radio.slots()
        health = radio.backend.health
        views.append(
            RadioView(
                radio.name,
                radio.backend.info().name,
                health.state,
                health.reason,
                used,
                limit,
                heard[radio.name],
            )
        )
    return views
