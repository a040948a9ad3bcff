"""The simulated backend: a world of virtual devices behind the same contract as a radio.

It is the project's measuring instrument, so its timing follows the physics (Core spec Vol 6,
Part B: Link Layer; Vol 3, Part F: ATT; :mod:`.theory` for the closed forms):

- Advertising: every device advertises at its interval plus a random 0-10 ms advDelay; the scanner
  hears an advertisement only inside its scan window, if it is not lost and its RSSI sample
  (mean + noise, drifting over time) reaches the sensitivity. A connected device does not advertise.
- Connecting: wait for a connectable advertisement the initiator hears, CONNECT_IND, the transmit
  window, then the ATT MTU exchange in the first two connection events. A device that no longer
  advertises cannot be connected: the attempt times out.
- Data: see :mod:`.link` - connection events, packets per event, data length, PHY air time, loss
  with retransmission, ATT MTU (payload MTU - 3), sequential ATT requests, long reads (Read Blob)
  and long writes (Prepare + Execute Write), write without response and notifications pipelined
  and bounded by buffers, supervision timeout when a device goes out of range.
- Faults from the world's ``[devices.faults]`` raise the error classes of ``core/errors.py``.
  The backend never retries: the core and the retry plugin decide that.

The class is built in layers: :mod:`.linklayer` (clock, scans, links), :mod:`.att` (ATT
transactions and notification streams), and here GATT and descriptors; :mod:`.devices` holds the
devices as the radio keeps them; :mod:`.radios` the world several radios share.

Time comes from a :mod:`.clock`: scaled real time, or a virtual clock (``time_scale = 0``).
"""

from __future__ import annotations

from mcp_ble.core.errors import (
    GattError,
    ValueTooLong,
)
from mcp_ble.core.models import (
    GattService,
    copy_services,
)
from mcp_ble.core.sig import short_uuid

from . import theory
from .att import SimAtt
from .devices import SimCharacteristic, SimDevice
from .link import Link


class SimulatedBackend(SimAtt):
    """Virtual devices from a world file.

    ``time_scale``: 1 = real time, 0.01 = a hundred times faster, 0 = a virtual clock (simulated
    time jumps; ``idle`` says what it does while no operation waits). ``seed`` overrides the
    world's. Durations the caller passes (``timeout_s``) are simulated seconds."""

    requests_mtu = True

    # ------------------------------------------------------------------ GATT

    async def discover(self, address: str) -> list[GattService]:
        """Primary services (Read By Group Type), characteristics per service (Read By Type) and
        descriptors (Find Information), each a request/response while the server has more."""
        device, link = self._linked(address)
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "service discovery")
            mtu = link.mtu
            plan: list[tuple[int, int]] = []
            plan += self._listing([s.uuid for s in device.services], 6, 20, mtu)
            for service in device.services:
                uuids = [c.uuid for c in service.characteristics]
                plan += self._listing(uuids, 7, 21, mtu)
                for char in service.characteristics:
                    if char.descriptors:
                        plan += self._listing([d.uuid for d in char.descriptors], 4, 18, mtu)
            for request_len, response_len in plan:
                await self._transaction(
                    device, link, request_len, response_len, "service discovery"
                )
            self._op_done(device, link)
        return copy_services(device.services)

    @staticmethod
    def _listing(uuids: list[str], short: int, long: int, mtu: int) -> list[tuple[int, int]]:
        """(request, response) sizes to list ``uuids``: as many entries per response as fit the
        MTU (``short``/``long`` bytes for 16-bit/128-bit UUIDs), then a final 'not found'."""
        out = []
        for size in (short, long):
            count = sum(1 for u in uuids if (short_uuid(u) is not None) == (size == short))
            per = max(1, (mtu - 2) // size)
            while count > 0:
                n = min(per, count)
                out.append((7, 2 + n * size))
                count -= n
        out.append((7, 5))  # Error Response: Attribute Not Found ends the listing
        return out

    async def read(self, address: str, handle: int) -> bytes:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "read")
            code = (
                0x02 if "read" not in sim.spec.properties else self._gatt_fault(device, sim, "read")
            )
            if code:
                await self._transaction(device, link, 3, 5, "read")
                raise GattError(code, "read")
            value = sim.source.sample(self.clock.now())[: theory.MAX_ATTRIBUTE_LEN]
            rounds = theory.read_rounds(link.params, len(value))
            await self._transaction(device, link, 3, 1 + rounds[0], "read")
            for size in rounds[1:]:
                await self._transaction(device, link, 5, 1 + size, "long read")
            self._op_done(device, link)
        return value

    async def write(self, address: str, handle: int, data: bytes, response: bool) -> None:
        device, link = self._linked(address)
        sim = self._char(device, handle)
        if not response:
            await self._write_without_response(device, link, sim, bytes(data))
            return
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "write")
            n = len(data)
            code = (
                0x03
                if "write" not in sim.spec.properties
                else self._gatt_fault(device, sim, "write")
            )
            if not code and n > sim.spec.max_length:
                code = 0x0D
            if code:
                await self._transaction(device, link, 3 + min(n, link.mtu - 3), 5, "write")
                raise GattError(code, "write")
            value = bytes(data)

            def apply(at: float) -> None:
                sim.source.store(value)
                if sim.spec.echo_to is not None:
                    self._echo(device, link, sim.spec.echo_to, value, at)

            if n <= link.mtu - 3:
                await self._transaction(device, link, 3 + n, 1, "write", apply)
            else:  # long write: Prepare Write requests (echoed back), then Execute Write
                chunk = link.mtu - 5
                for offset in range(0, n, chunk):
                    part = min(chunk, n - offset)
                    await self._transaction(device, link, 5 + part, 5 + part, "long write")
                await self._transaction(device, link, 2, 1, "long write", apply)
            self._op_done(device, link)

    async def _write_without_response(
        self, device: SimDevice, link: Link, sim: SimCharacteristic, data: bytes
    ) -> None:
        """Queue the packets in the controller's buffers and return; block only while the
        buffers are full (flow control), until the link has sent enough."""
        address = device.spec.address
        if "write-without-response" not in sim.spec.properties:
            raise GattError(0x03, "write without response")
        if len(data) > link.mtu - 3:
            raise ValueTooLong(
                f"{len(data)} bytes do not fit one write without response to {address} "
                f"(MTU {link.mtu}: at most {link.mtu - 3})",
                "split the value, or write with response",
            )
        await self._op_faults(device, link, "write without response")
        need = len(theory.fragments(3 + len(data), link.data_length))
        queue = link.in_flight
        now = self.clock.now()
        while queue and queue[0] <= now:
            queue.popleft()
        if len(queue) + need > link.tx_buffers:
            await self._until(device, link, queue[len(queue) + need - link.tx_buffers - 1], "write")
            now = self.clock.now()
            while queue and queue[0] <= now:
                queue.popleft()
        done: list[float] = []
        arrival = link.central.send(now, 3 + len(data), done)
        queue.extend(done)
        # The peripheral has no way to refuse a write without response: a bad one is dropped.
        if len(data) <= sim.spec.max_length and not self._gatt_fault(device, sim, "write"):
            sim.source.store(data)
            if sim.spec.echo_to is not None:
                self._echo(device, link, sim.spec.echo_to, data, arrival)
        self._op_done(device, link)

    async def drain(self, address: str) -> float:
        """Wait until every queued write without response has reached the device; return the
        simulated time the last one arrived (for throughput measurements)."""
        device, link = self._linked(address)
        if not link.in_flight:
            return self.clock.now()
        last = link.in_flight[-1]
        await self._until(device, link, last, "write without response")
        return last

    # ------------------------------------------------------------------ descriptors

    def _descriptor(
        self, address: str, handle: int, what: str
    ) -> tuple[SimDevice, Link, SimCharacteristic]:
        """The linked device, its link and the characteristic owning descriptor ``handle``."""
        device, link = self._linked(address)
        sim = device.descriptor_owner.get(handle)
        if sim is None:
            raise GattError(0x01, what)
        return device, link, sim

    async def read_descriptor(self, address: str, handle: int) -> bytes:
        device, link, sim = self._descriptor(address, handle, "descriptor read")
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "descriptor read")
            value = bytes(sim.descriptor_values[handle])
            await self._transaction(
                device, link, 3, 1 + min(len(value), link.mtu - 1), "descriptor read"
            )
            self._op_done(device, link)
        return value

    async def write_descriptor(self, address: str, handle: int, data: bytes) -> None:
        device, link, sim = self._descriptor(address, handle, "descriptor write")
        async with link.att:
            self._linked(address)
            await self._op_faults(device, link, "descriptor write")
            code = None
            if not sim.descriptor_writable[handle]:
                code = 0x03
            elif handle == sim.cccd_handle and len(data) != 2:
                code = 0x0D
            await self._transaction(
                device, link, 3 + len(data), 5 if code else 1, "descriptor write"
            )
            if code:
                raise GattError(code, "descriptor write")
            sim.descriptor_values[handle][:] = data
            self._op_done(device, link)
