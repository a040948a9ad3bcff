"""Decoder plugins: sensor readings from advertisements, one plugin per parser library.

Each is an optional extra named like the plugin (``pip install 'mcp-ble[bthome]'``) and runs when
the settings list it (``plugins = [..., "bthome", "xiaomi"]``); the first decoder that answers
for a payload wins, in that order. ``adapter`` turns the sensor-state-data family's updates into
readings; ``eddystone`` is written here from Google's Eddystone format specification (no kept
library decodes it); ``keys`` holds the per-device keys of encrypted formats.
"""

from __future__ import annotations

from importlib.util import find_spec

#: The built-in decoders in the order ``plugins = [..., "decoders"]`` enables them (those whose
#: library is installed): formats with a fixed service UUID or company id first, then those that
#: try every payload (govee, inkbird, sensorpush, thermopro), so these cannot answer first for a
#: payload another decoder owns.
DECODERS = (
    "bthome",
    "xiaomi",
    "qingping",
    "ruuvitag",
    "bluemaestro",
    "ibeacon",
    "eddystone",
    "govee",
    "inkbird",
    "sensorpush",
    "thermopro",
)

#: What every library on the sensor-state-data family needs besides itself (adapter.py).
FAMILY = ("sensor_state_data", "habluetooth", "bleak")


def missing_library(plugin: str, library: str) -> ImportError:
    """The one-line error a decoder plugin raises at import when its library is missing: the
    plugin is then listed as not loadable, and enabling it fails with this line."""
    return ImportError(
        f"the {plugin} decoder needs the {library} library: pip install 'mcp-ble[{plugin}]'"
    )


def require(plugin: str, library: str, *modules: str) -> None:
    """Raise :func:`missing_library` unless each module is installed. Only looked up
    (``find_spec`` reads the import path, it runs nothing): a plugin module stays cheap to
    import, since every installed plugin is imported to be listed whether or not it is enabled;
    the library itself is imported when an app enabling the plugin starts."""
    for module in modules:
        try:
            if find_spec(module) is None:
                raise missing_library(plugin, library)
        except ValueError:  # a module set to None in sys.modules: blocked, as missing
            raise missing_library(plugin, library) from None
