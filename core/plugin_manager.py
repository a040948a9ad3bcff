"""Finding, cataloguing and loading plugins.

The :class:`PluginCatalog` knows every plugin that *could* run: the built-in backends and
optimization plugins, and third-party plugins found through the ``mcp_ble`` entry-point group.
It asks each for the backends and settings sections it registers, which is all the settings loader
needs. :func:`build_plugin_manager` then makes a fresh pluggy ``PluginManager`` for one app with
only the selected backend's plugin and the enabled plugins registered: no module-level global.

A plugin is a module (or any object) with ``@hookimpl`` functions, or a class whose instances
have them: a class is instantiated once per app, so per-app state (metrics, policies) lives on the
instance and never leaks between apps.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy
from pluggy import HookImpl, Result
from pydantic import BaseModel

from . import hookspecs
from .errors import ConfigError

ENTRY_POINT_GROUP = "mcp_ble"

#: The distribution whose entry points are the built-in backends and plugins. They are declared
#: in pyproject.toml under [project.entry-points.mcp_ble] and found exactly like third-party ones.
OWN_DISTRIBUTION = "mcp-ble"

RESERVED_SECTIONS = frozenset({"backend", "plugins", "trace_hooks", "server", "backends"})


@dataclass
class BackendRegistration:
    name: str
    factory: Callable[..., Any]
    settings: type[BaseModel] | None
    description: str
    plugin: str


@dataclass
class PluginCatalog:
    """Every available plugin, by name, and what each registers."""

    plugins: dict[str, object] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    backends: dict[str, BackendRegistration] = field(default_factory=dict)
    sections: dict[str, type[BaseModel]] = field(default_factory=dict)
    section_owner: dict[str, str] = field(default_factory=dict)

    @classmethod
    def discover(cls, extra: dict[str, object] | None = None) -> PluginCatalog:
        """Every plugin in the ``mcp_ble`` entry-point group — mcp-ble's own backends and
        plugins included, declared the same way — then ``extra`` (plugin objects given directly,
        for tests and embedding)."""
        catalog = cls()
        own = 0
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist else None
            builtin = dist_name is not None and _normalize(dist_name) == OWN_DISTRIBUTION
            own += builtin
            if ep.name in catalog.plugins:
                catalog.broken[ep.name] = (
                    f"entry point {ep.name} = {ep.value} from {dist_name} has the name of another "
                    f"plugin ({catalog.origins[ep.name]}); rename the entry point"
                )
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop the server
                catalog.broken[ep.name] = (
                    f"entry point {ep.name} = {ep.value} failed to import: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            origin = (
                f"built-in ({ep.value})"
                if builtin
                else f"entry point {ep.value}" + (f" from {dist_name}" if dist_name else "")
            )
            catalog.add(ep.name, obj, origin)
        if not own:
            raise ConfigError(
                "mcp-ble's own backends and plugins were not found: the package's entry points "
                "are missing. Install it (pip install -e . in a checkout, or pip install mcp-ble)"
            )
        for name, obj in (extra or {}).items():
            catalog.add(name, obj, "given directly")
        return catalog

    def add(self, name: str, plugin: object, origin: str) -> None:
        self.plugins[name] = plugin
        self.origins[name] = origin
        self._collect(name, plugin)

    def _collect(self, name: str, plugin: object) -> None:
        """Call the plugin's registration hooks (only those, only on it)."""

        def register_backend(
            backend_name: str,
            factory: Callable[..., Any],
            settings: type[BaseModel] | None = None,
            description: str = "",
        ) -> None:
            if backend_name in self.backends:
                other = self.backends[backend_name].plugin
                raise ConfigError(
                    f"plugin '{name}' registers backend '{backend_name}', "
                    f"which plugin '{other}' already registered"
                )
            self.backends[backend_name] = BackendRegistration(
                backend_name, factory, settings, description, name
            )

        def register_section(section: str, model: type[BaseModel]) -> None:
            if section in RESERVED_SECTIONS or section in self.sections:
                owner = self.section_owner.get(section, "the core")
                raise ConfigError(
                    f"plugin '{name}' declares settings section [{section}], "
                    f"which {owner} already uses; choose another section name"
                )
            self.sections[section] = model
            self.section_owner[section] = name

        pm = new_plugin_manager()
        pm.register(instantiate(plugin), name=name)
        for impl in pm.hook.mcp_ble_register_backends.get_hookimpls():
            impl.function(register=register_backend)
        for impl in pm.hook.mcp_ble_register_settings.get_hookimpls():
            impl.function(register=register_section)

    def resolve(self, backend: str, enabled: Iterable[str]) -> list[tuple[str, object]]:
        """The plugins an app with this backend and these enabled plugins registers, in order."""
        if backend not in self.backends:
            raise ConfigError(
                f"backend = '{backend}' is not a known backend; "
                f"available: {', '.join(sorted(self.backends))}"
            )
        chosen: list[tuple[str, object]] = []
        owner = self.backends[backend].plugin
        chosen.append((owner, self.plugins[owner]))
        for name in enabled:
            if name in self.broken:
                raise ConfigError(f"plugin '{name}' cannot be loaded: {self.broken[name]}")
            if name not in self.plugins:
                owners = {reg.plugin for reg in self.backends.values()}
                optional = sorted(n for n in self.plugins if n not in owners)
                raise ConfigError(
                    f"plugins: '{name}' is not an installed plugin; available: "
                    f"{', '.join(optional)} (third-party plugins are found through the "
                    f"'{ENTRY_POINT_GROUP}' entry-point group)"
                )
            if name in (n for n, _ in chosen):
                raise ConfigError(f"plugins: '{name}' is listed twice; list each plugin once")
            chosen.append((name, self.plugins[name]))
        return chosen


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def load_object(spec: str) -> object:
    """``package.module`` or ``package.module:attribute``, as in an entry point."""
    module_name, _, attribute = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


def instantiate(plugin: object) -> object:
    """Classes are plugins whose instances hold per-app state; anything else is used as is."""
    return plugin() if isinstance(plugin, type) else plugin


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def build_plugin_manager(
    plugins: list[tuple[str, object]], trace: bool = False
) -> pluggy.PluginManager:
    """A plugin manager for one app. ``plugins`` are (name, plugin object) pairs, already
    instantiated; the first listed is called first (pluggy calls the last registered first)."""
    pm = new_plugin_manager()
    for name, plugin in reversed(plugins):
        pm.register(plugin, name=name)
    if trace:
        pm.add_hookcall_monitoring(_trace_before, _trace_after)
    return pm


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _trace_before(
    hook_name: str, hook_impls: Sequence[HookImpl], kwargs: Mapping[str, Any]
) -> None:
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items() if k != "app")
    names = ", ".join(impl.plugin_name for impl in hook_impls) or "no implementations"
    print(f"[mcp-ble hook] {hook_name}({args}) -> [{names}]", file=sys.stderr, flush=True)


def _trace_after(
    outcome: Result[Any], hook_name: str, hook_impls: Sequence[HookImpl], kwargs: Mapping[str, Any]
) -> None:
    try:
        result = outcome.get_result()
    except BaseException as exc:  # pluggy re-raises it to the caller; we only report it
        print(f"[mcp-ble hook] {hook_name} raised {exc!r}", file=sys.stderr, flush=True)
        return
    print(f"[mcp-ble hook] {hook_name} returned {_short(result)}", file=sys.stderr, flush=True)


def hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hook names a registered plugin implements."""
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
