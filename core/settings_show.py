"""What ``mcp-ble config show`` prints beyond the dump of the settings: each ``[[radios]]``
table's keys as rows of their own, and secrets kept out of the dump shown masked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, SecretStr


def mask_secrets(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """``dumped`` (``model``'s dump), showing a secret that is set but kept out of the dump
    (``exclude=True``, as an ESPHome proxy's noise_psk) masked, as the dump shows every other
    SecretStr: set, never its value."""
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        shown = dumped.get(name)
        if isinstance(value, SecretStr) and name not in dumped:
            dumped[name] = str(value)
        elif isinstance(value, BaseModel) and isinstance(shown, dict):
            mask_secrets(value, shown)
        elif isinstance(value, list) and isinstance(shown, list):
            for item, item_shown in zip(value, shown, strict=False):
                if isinstance(item, BaseModel) and isinstance(item_shown, dict):
                    mask_secrets(item, item_shown)
    return dumped


def radio_rows(
    tables: list[dict[str, Any]], loaded: Any, flatten: Callable[[Any, str], dict[str, Any]]
) -> list[tuple[str, Any, str]]:
    """(key, value, source) of each ``[[radios]]`` table's keys (``tables``: their dump),
    ``radios.0.name`` first then ``backend``: where the tables came from for a key the table
    sets (``loaded``: the LoadedSettings), ``default`` for the others."""
    source = loaded.origin("radios")
    given = {**loaded.file_data, **loaded.env_data, **loaded.cli_data}.get("radios") or []
    rows = []
    for index, table in enumerate(tables):
        keys = given[index] if index < len(given) and isinstance(given[index], dict) else {}
        first = {"name": table.pop("name", None), "backend": table.pop("backend", None)}
        for key, value in flatten({**first, **table}, f"radios.{index}").items():
            rows.append((key, value, source if key.split(".")[2] in keys else "default"))
    return rows
