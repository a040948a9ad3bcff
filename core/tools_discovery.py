"""Discovery tools: ``ble_scan``, ``ble_devices`` and ``ble_sensors`` (readings decoded from
advertisements, :mod:`.sensors`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from .app import BleApp
from .errors import ConfigError, InvalidInput
from .models import ScanFilter
from .outputs import DevicesResult, ScanResult, SensorsResult, device_out
from .readings import check_measurement, parse_measurement, readings_out, sensor_out
from .sensors import Entry
from .toolkit import READ_ONLY, app_of, tool
from .values import parse_name_filter, parse_uuid, shown_number


@tool(READ_ONLY)
async def ble_scan(
    ctx: Context,
    duration_s: Annotated[float | None, Field(description="seconds; default from settings")] = None,
    name: Annotated[str | None, Field(description="part of the name, any case")] = None,
    service_uuid: Annotated[
        str | None, Field(description="advertised service, e.g. '180d'")
    ] = None,
    min_rssi: Annotated[int | None, Field(description="dBm, e.g. -80")] = None,
    manufacturer_id: Annotated[
        int | None, Field(description="SIG company id, e.g. 89 (Nordic)")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="stop once this many match")] = 50,
) -> ScanResult:
    """Scan for advertisers, strongest first; names and sensor readings decoded."""
    app = app_of(ctx)
    scan_filter = ScanFilter(
        name=parse_name_filter(name),
        service_uuid=parse_uuid(service_uuid) if service_uuid else None,
        min_rssi=min_rssi,
        manufacturer_id=manufacturer_id,
    )
    if manufacturer_id is not None and not 0 <= manufacturer_id <= 0xFFFF:
        raise InvalidInput(
            f"manufacturer_id={shown_number(manufacturer_id)} is out of range",
            "company ids are 0..65535 (e.g. 76 for Apple, 89 for Nordic)",
        )
    task = asyncio.create_task(app.scan(duration_s, scan_filter, limit))
    # Seconds on the backend's clock; the total is known only when the caller fixed it
    # (plugins such as adaptive_scan choose the length otherwise).
    clock = app.radio.now
    started = clock()
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            elapsed = clock() - started
            with contextlib.suppress(Exception):
                await ctx.report_progress(
                    min(elapsed, duration_s) if duration_s else elapsed,
                    duration_s,
                    f"scanning: {elapsed:.1f} s, {len(app.tracker)} devices known",
                )
    outcome = task.result()
    latest = app.sensors.latest
    # An entry the scan filters on keeps its hex: asking for it is how an agent gets the bytes.
    asked = {scan_filter.service_uuid, manufacturer_id} - {None}
    return ScanResult(
        devices=[
            device_out(
                r,
                readings=readings_out(latest(r.address)),
                codec=app.codec,
                read=unasked(app.sensors.read(r.address), asked),
            )
            for r in outcome.devices
        ],
        matched=outcome.matched if outcome.matched > len(outcome.devices) else None,
        duration_s=round(outcome.duration_s, 2),
        simulated=app.radio.info().simulated or None,
        notes=outcome.plan.notes or None,
    )


def unasked(read: dict[Entry, bytes], asked: set[Entry | None]) -> dict[Entry, bytes]:
    """The entries decoders read, less those named in ``asked``."""
    if not read or not asked.intersection(read):
        return read
    return {entry: data for entry, data in read.items() if entry not in asked}


@tool(READ_ONLY)
async def ble_devices(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=10_000, description="most devices")] = 100,
) -> DevicesResult:
    """Devices heard recently, strongest first, without scanning."""
    app = app_of(ctx)
    now = app.now()
    latest, read = app.sensors.latest, app.sensors.read
    return DevicesResult(
        devices=[
            device_out(r, now, readings_out(latest(r.address)), app.codec, read(r.address))
            for r in app.devices(limit)
        ],
        simulated=app.radio.info().simulated or None,
    )


@tool(READ_ONLY)
async def ble_sensors(
    ctx: Context,
    measurement: Annotated[str | None, Field(description="e.g. temperature")] = None,
    name: str | None = None,
    listen_s: Annotated[float | None, Field(ge=0, le=30)] = None,
) -> SensorsResult:
    """Sensor readings from recent advertisements, no connect; listens if none known (3 s) or
    for listen_s."""
    app = app_of(ctx)
    wanted = parse_measurement(measurement)
    part = parse_name_filter(name)
    store = app.sensors
    if not store.enabled:
        raise ConfigError(
            "No advertisement decoder plugin is enabled, so no sensor readings are decoded",
            "install the decoders (pip install 'mcp-ble[decoders]') and add \"decoders\" (every "
            "one installed) or their names to the settings' plugins: plugins = [..., "
            "\"decoders\"] (README 'Advertisement decoders')",
        )
    if wanted is not None:
        check_measurement(wanted, _known_measurements(app))
    recent_s = app.settings.server.recent_s
    found = store.query(recent_s, wanted, part)
    listened = None
    # Not given: answer from recent readings, listening 3 s only if none; given: listen for it
    # (a named device's report ends it early), so an agent can ask for a fresh reading.
    seconds = 3.0 if listen_s is None else listen_s
    if seconds > 0 and (listen_s is not None or not found):
        listened = await _listen(app, seconds, wanted, part)
        found = store.query(recent_s, wanted, part)
    now = app.now()
    return SensorsResult(
        sensors=[sensor_out(d, now) for d in found],
        listened_s=listened,
    )


def _known_measurements(app: BleApp) -> set[str] | None:
    """Every measurement the enabled decoders can give (their ``measurements``) and every one
    heard; ``None`` when a decoder does not say which it gives."""
    known: set[str] = set()
    for impl in app.hook.mcp_ble_decode_advertisement.get_hookimpls():
        names = getattr(impl.plugin, "measurements", None)
        if names is None:
            return None
        known.update(names)
    return known | app.sensors.measurements()


async def _listen(app: BleApp, seconds: float, wanted: str | None, part: str | None) -> float:
    """Listen through the scan broker (sharing the radio with concurrent scans) for up to
    ``seconds``; asked about named devices, stop as soon as one of them reports a matching
    reading. Returns how long it listened."""
    store, recent_s = app.sensors, app.settings.server.recent_s
    heard: list[bool] = []

    def on_change(address: str) -> None:
        if not heard and store.query(recent_s, wanted, part):
            heard.append(True)

    if part is not None:
        store.add_listener(on_change)
    try:
        outcome = await app.scan(
            seconds, ScanFilter(name=part), until=(lambda: bool(heard)) if part else None
        )
    finally:
        store.remove_listener(on_change)
    return round(outcome.duration_s, 2)
