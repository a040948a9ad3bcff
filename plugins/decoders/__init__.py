"""Decoder plugins: sensor readings from advertisements, one plugin per parser library.

Each is an optional extra named like the plugin (``pip install 'mcp-ble[bthome]'``) and runs when
the settings list it (``plugins = [..., "bthome", "xiaomi"]``); the first decoder that answers
for a payload wins, in that order. ``adapter`` turns the sensor-state-data family's updates into
readings; ``eddystone`` is written here from Google's Eddystone format specification (no kept
library decodes it); ``keys`` holds the per-device keys of encrypted formats.
"""

from __future__ import annotations


def missing_library(plugin: str, library: str) -> ImportError:
    """The one-line error a decoder plugin raises at import when its library is missing: the
    plugin is then listed as not loadable, and enabling it fails with this line."""
    return ImportError(
        f"the {plugin} decoder needs the {library} library: pip install 'mcp-ble[{plugin}]'"
    )
