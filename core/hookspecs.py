"""The plugin API of mcp-ble: every hook a plugin or backend may implement.

A plugin is any object or module with functions named after these specs and marked with
``@hookimpl`` (``from mcp_ble.core.hookspecs import hookimpl``). Built-in backends and plugins use
exactly these hooks; nothing else is available to them either.

Principles:

- The core owns the async flow and all I/O. Hooks are decision points (they return or fill in a
  plan) and events (they observe). A hook never has to call the radio itself.
- A hook listed in :data:`MAY_BE_ASYNC` may be ``async def``; the core calls its implementations
  one after another in the order the settings file lists the plugins, awaiting each before the
  next, whether sync or async. Every other hook is synchronous: an ``async def`` implementation of
  one is refused when the plugin loads, as is a marked function whose name is not a hook here.
- A *plan* hook refuses an operation by raising a ``BleError`` (``mcp_ble.core.errors``): the
  caller receives its message. Any other exception from a hook is logged and ignored.
- Hooks receive keyword arguments; an implementation may accept any subset of them. ``app`` is a
  :class:`~mcp_ble.core.plugin_api.PluginApp`: the views and actions a plugin may use.
- A plugin class declares its settings once, as ``settings_model = MyModel``; the core validates
  the section named after the plugin and sets ``self.settings`` before any hook runs.
- Hot-path hooks run for every advertisement or notification: keep them to a few microseconds.

Families: registration, lifecycle, discovery, connection, transfer, decoding, metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .errors import BleError
    from .models import Advertisement, SensorReading
    from .plans import ConnectPlan, MtuPlan, Operation, ScanPlan, SubscribePlan, WritePlan
    from .plugin_api import PluginApp
    from .tracker import DeviceRecord

PROJECT = "mcp_ble"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The hooks whose implementations may be ``async def``: events and plans the core awaits in order.
MAY_BE_ASYNC = frozenset(
    {
        "mcp_ble_startup",
        "mcp_ble_shutdown",
        "mcp_ble_scan_plan",
        "mcp_ble_scan_finished",
        "mcp_ble_connect_plan",
        "mcp_ble_connected",
        "mcp_ble_connect_failed",
        "mcp_ble_disconnected",
        "mcp_ble_subscribe_plan",
        "mcp_ble_write_plan",
    }
)


# --------------------------------------------------------------------------- registration


@hookspec
def mcp_ble_register_backends(register: Any) -> None:
    """Register zero or more backends.

    Call ``register(name, factory, settings=None, description="", traits=None)`` once per
    backend:

    - ``name``: what ``backend = "..."`` in the settings file selects.
    - ``factory(settings, backends) -> Backend``: builds the backend. ``settings`` is an instance
      of ``settings`` (the model below) filled from the ``[backends.<name>]`` section;
      ``backends`` (``RegisteredBackends``) builds other registered backends by name, for a
      backend made of others. Import heavy or optional libraries inside the factory so that
      registering costs nothing.
    - ``settings``: a pydantic model class for the ``[backends.<name>]`` section, or ``None``.
    - ``traits``: a ``mcp_ble.core.traits.BackendTraits``: whether its devices are simulated,
      whether starting it takes the adapter from the OS, the packages it needs, a ``doctor``
      check, and which backends it composes.

    Called on every available plugin (enabled or not), so a backend can be selected by name.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def mcp_ble_startup(app: PluginApp) -> None:
    """The app has started its backend and is about to serve. May be async.

    Start background work here with ``app.every(interval_s, fn)`` (periodic, on the backend's
    clock) or ``app.spawn(coro)``: the core cancels both at shutdown.
    """


@hookspec
def mcp_ble_shutdown(app: PluginApp) -> None:
    """The app is stopping; release what ``mcp_ble_startup`` took. May be async. Must not raise."""


# --------------------------------------------------------------------------- discovery


@hookspec
def mcp_ble_scan_plan(plan: ScanPlan, app: PluginApp) -> None:
    """A scan is about to start. Adjust ``plan`` in place (for example ``plan.duration_s``, or
    ``plan.stop_after`` to end early once that many matching devices were heard). May be async.
    Record why with ``plan.note("...")``; notes are shown to the caller."""


@hookspec
def mcp_ble_advertisement(advertisement: Advertisement, record: DeviceRecord, new: bool) -> None:
    """Hot path: an advertisement was merged into the device tracker. ``new`` is true the first
    time this address is seen. Synchronous only."""


@hookspec(firstresult=True)
def mcp_ble_decode_advertisement(advertisement: Advertisement) -> list[SensorReading] | None:
    """*firstresult*, synchronous, hot path. Turn an advertisement's service data or
    manufacturer data into sensor readings, or return ``None`` when it is not your format (the
    next decoder in settings order is asked). An empty list means "my format, nothing to
    report" and stops the search.

    The core calls this only for advertisements that carry service or manufacturer data, and
    only once per distinct payload of a device (``core/sensors.py`` caches the answer per
    address, service data, manufacturer data and name), so a decoder may keep per-device state
    (keys, packet counters) but must give the same answer for the same payload. ``advertisement``
    carries the device's latest known name when the report itself has none. Values that follow
    the RSSI of one report (signal strength, distance) do not belong here: the device list shows
    the RSSI. A decoder that raises is logged and counted as ``None``. A reading whose
    ``payload`` names the service-data UUID or company id it was read from lets ``ble_scan``
    and ``ble_devices`` leave that entry's hex out; without it the hex stays shown. A decoder
    plugin may name every measurement its readings can have in a ``measurements`` attribute (a
    set of strings): when every enabled decoder does, ``ble_sensors`` refuses any other
    measurement at once instead of listening for it."""


@hookspec
def mcp_ble_scan_finished(plan: ScanPlan, found: int, duration_s: float, app: PluginApp) -> None:
    """A scan ended; ``found`` devices matched its filter. May be async."""


# --------------------------------------------------------------------------- connection


@hookspec
def mcp_ble_connect_plan(plan: ConnectPlan, app: PluginApp) -> None:
    """A connection is about to be made. Adjust ``plan`` in place; to free an adapter slot put
    addresses into ``plan.release`` and the core disconnects them first. May be async."""


@hookspec
def mcp_ble_mtu_plan(plan: MtuPlan, app: PluginApp) -> None:
    """A link is up and the backend is about to ask for an ATT MTU: set ``plan.mtu`` to choose
    it (backends whose OS negotiates the MTU never call this). Synchronous; runs inside the
    connect, so keep it short."""


@hookspec(firstresult=True)
def mcp_ble_retry_delay(operation: Operation, error: BleError, attempt: int) -> float | None:
    """*firstresult*, synchronous. ``operation`` (a connect, read, write, ...) failed with
    ``error`` on attempt ``attempt`` (1-based). Return the seconds to wait before trying again,
    or ``None`` to give up and surface the error. With no implementation nothing is retried.

    The core will not start a retry that would end after ``operation.deadline``; check
    ``operation.idempotent`` before retrying anything that may already have taken effect."""


@hookspec
def mcp_ble_connected(address: str, duration_s: float, attempts: int, app: PluginApp) -> None:
    """A link is up (after ``attempts`` tries taking ``duration_s`` in all). May be async."""


@hookspec
def mcp_ble_connect_failed(
    address: str, error: BleError, duration_s: float, attempts: int, app: PluginApp
) -> None:
    """Connecting failed for good; ``error`` is what the caller will see. May be async."""


@hookspec
def mcp_ble_disconnected(address: str, reason: str, requested: bool, app: PluginApp) -> None:
    """A link went down. ``requested`` is false when the peripheral, the radio or a timeout
    dropped it. May be async."""


# --------------------------------------------------------------------------- transfer


@hookspec
def mcp_ble_subscribe_plan(plan: SubscribePlan, app: PluginApp) -> None:
    """A subscription is about to start. A plugin may change ``plan.buffer_size``, or refuse by
    raising a ``BleError`` whose message tells the caller what to do instead. May be async."""


@hookspec
def mcp_ble_write_plan(plan: WritePlan, app: PluginApp) -> None:
    """A characteristic write is about to be sent. ``plan.chunks`` starts as one chunk; a plugin
    may split it (for example into ``plan.mtu - 3`` byte pieces for write without response).
    Synchronous or async. It may run twice for one write: once to show a person exactly what
    will be sent (``server.write_policy = "confirm"``), then for the write itself, which is sent
    only if the bytes are the same; so decide the same way both times and keep side effects out."""


@hookspec
def mcp_ble_operation_finished(
    operation: Operation, duration_s: float, nbytes: int, error: BleError | None
) -> None:
    """An operation ended, successfully (``error is None``) or not, after all retries.
    ``nbytes`` is the payload moved. Synchronous; called once per operation."""


@hookspec
def mcp_ble_notification(address: str, handle: int, data: bytes) -> None:
    """Hot path: a notification or indication arrived for a subscription. Synchronous only."""


# --------------------------------------------------------------------------- decoding
#
# Decoders are plugins like the others: enabled and ordered in the settings file, and the first
# listed that answers (returns something other than None) wins. Without any decoder a value is
# shown as hex (and text when it is text), and a UUID by its number alone.


@hookspec(firstresult=True)
def mcp_ble_decode_value(uuid: str, data: bytes) -> dict[str, Any] | None:
    """*firstresult*, synchronous, hot path (every read and notification). ``uuid`` is the full
    lowercase UUID of a characteristic or descriptor, ``data`` its value. Return the decoded
    fields, flat, each named with its unit (``{"battery_level_percent": 87}``,
    ``{"temperature_c": 21.5}``), JSON-serialisable; or ``None`` when this decoder does not know
    the characteristic. A value that cannot be parsed returns ``None`` too (the caller then
    sees hex and text): never raise."""


@hookspec(firstresult=True)
def mcp_ble_encode_value(uuid: str, value: Any) -> bytes | None:
    """*firstresult*, synchronous. The bytes that write the typed ``value`` (a number, a string
    or an object of fields, as ``mcp_ble_decode_value`` names them) to characteristic ``uuid``,
    or ``None`` when this decoder cannot encode that characteristic. A value of the wrong shape
    raises ``InvalidInput`` (``mcp_ble.core.errors``, code ``invalid_input``) whose message
    lists the fields expected."""


@hookspec(firstresult=True)
def mcp_ble_uuid_name(uuid: str) -> str | None:
    """*firstresult*, synchronous. The name of a service, characteristic or descriptor UUID
    (full, lowercase), such as ``"Heart Rate"``, or ``None`` when this plugin does not know it.
    Results cache the answer per UUID for the app's lifetime."""


# --------------------------------------------------------------------------- metrics


@hookspec
def mcp_ble_register_metrics(registry: CollectorRegistry, app: PluginApp) -> None:
    """Add your Prometheus collectors to the app's own ``registry`` (never the global one).
    Called once at startup, before ``mcp_ble_startup``. Synchronous."""


@hookspec
def mcp_ble_collect_metrics(app: PluginApp) -> None:
    """Called right before metrics are exposed: refresh gauges that are sampled, not counted.
    Synchronous."""
