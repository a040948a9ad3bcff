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

import difflib
import importlib
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy
from pluggy import HookImpl, PluginValidationError, Result
from pydantic import BaseModel

from . import hookspecs
from .errors import BleError, ConfigError
from .traits import BackendTraits

log = logging.getLogger("mcp_ble")

ENTRY_POINT_GROUP = "mcp_ble"

#: The distribution whose entry points are the built-in backends and plugins. They are declared
#: in pyproject.toml under [project.entry-points.mcp_ble] and found exactly like third-party ones.
OWN_DISTRIBUTION = "mcp-ble"

#: In ``plugins``: every built-in decoder plugin whose library is installed (:meth:`expand`).
DECODER_GROUP = "decoders"

RESERVED_SECTIONS = frozenset({"backend", "plugins", "trace_hooks", "server", "backends"})


@dataclass
class BackendRegistration:
    name: str
    factory: Callable[..., Any]
    settings: type[BaseModel] | None
    description: str
    plugin: str
    traits: BackendTraits = field(default_factory=BackendTraits)


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
        # Distribution.name parses the distribution's METADATA file anew on every call: once
        # per distribution, not once per entry point (mcp-ble alone declares 27).
        names: dict[int, str | None] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            if id(dist) not in names:
                names[id(dist)] = dist.name if dist else None
            dist_name = names[id(dist)]
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
        """Check the plugin against the hook rules and collect what it registers; a plugin that
        breaks a rule is kept out (listed in ``broken``) and fails the app only if enabled."""
        pm = new_plugin_manager()
        instance = instantiate(plugin)
        try:
            try:
                pm.register(instance, name=name)
            except PluginValidationError as exc:
                detail = "; ".join(str(exc).splitlines()[1:])
                raise ConfigError(f"it does not match the hook spec: {detail}") from None
            check_hook_rules(pm, instance)
            model = getattr(plugin, "settings_model", None)
            if model is not None:
                _check_settings_model(model, "its settings_model")
                if name in RESERVED_SECTIONS or name in self.sections:
                    owner = self.section_owner.get(name, "the core")
                    raise ConfigError(
                        f"its settings section [{name}] is already used by {owner}; install the "
                        "plugin under another entry-point name"
                    )
            backends = self._collect(name, pm)
        except ConfigError as exc:
            self.broken[name] = str(exc)
            return
        self.plugins[name] = plugin
        self.origins[name] = origin
        self.backends.update(backends)
        if model is not None:
            self.sections[name] = model
            self.section_owner[name] = name

    def _collect(self, name: str, pm: pluggy.PluginManager) -> dict[str, BackendRegistration]:
        """Call the plugin's registration hooks (only those, only on it); what it registers,
        or ConfigError if any of it is wrong."""
        found: dict[str, BackendRegistration] = {}

        def register_backend(
            backend_name: str,
            factory: Callable[..., Any],
            settings: type[BaseModel] | None = None,
            description: str = "",
            traits: BackendTraits | None = None,
        ) -> None:
            what = f"backend '{backend_name}'"
            if traits is not None and not isinstance(traits, BackendTraits):
                raise ConfigError(
                    f"it registers {what} with traits={traits!r}; "
                    "pass a mcp_ble.core.traits.BackendTraits"
                )
            if settings is not None:
                _check_settings_model(settings, f"{what}'s settings")
            if backend_name in found:
                raise ConfigError(f"it registers {what} twice")
            if backend_name in self.backends:
                other = self.backends[backend_name].plugin
                raise ConfigError(f"it registers {what}, which plugin '{other}' already registered")
            found[backend_name] = BackendRegistration(
                backend_name, factory, settings, description, name, traits or BackendTraits()
            )

        for impl in pm.hook.mcp_ble_register_backends.get_hookimpls():
            try:
                impl.function(register=register_backend)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"its mcp_ble_register_backends failed: {type(exc).__name__}: {exc}"
                ) from None
        return found

    def resolve(
        self, backend: str | Sequence[str], enabled: Iterable[str]
    ) -> list[tuple[str, object]]:
        """The plugins an app with this backend (or these, one per radio) and these enabled
        plugins registers, in order."""
        chosen: list[tuple[str, object]] = []
        for name in [backend] if isinstance(backend, str) else backend:
            if name not in self.backends:
                broken = "".join(
                    f"; plugin '{n}' was not loaded: {why}" for n, why in self.broken.items()
                )
                raise ConfigError(
                    f"backend = '{name}' is not a known backend; "
                    f"available: {', '.join(sorted(self.backends))}{broken}"
                )
            owner = self.backends[name].plugin
            if owner not in (n for n, _ in chosen):
                chosen.append((owner, self.plugins[owner]))
        for name in self.expand(enabled):
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

    def expand(self, enabled: Iterable[str]) -> list[str]:
        """``enabled`` with the group name ``decoders`` replaced by every built-in decoder plugin
        that can load (its library installed) and is not named elsewhere in the list; a decoder
        named on its own must load."""
        names = list(enabled)
        if DECODER_GROUP not in names:
            return names
        from ..plugins.decoders import DECODERS

        found = [n for n in DECODERS if n in self.plugins and n not in names]
        at = names.index(DECODER_GROUP)
        return names[:at] + found + [n for n in names[at + 1 :] if n != DECODER_GROUP]

    def resolve_settings(self, settings: Any, path: Any = None) -> list[tuple[str, object]]:
        """:meth:`resolve` for loaded settings: every radio's backend, checked as a fleet.
        ``path``: the settings file, named first in an error about its ``[[radios]]``."""
        radios = settings.radio_list()
        if settings.radios:
            where = f"{path}: " if path is not None else ""
            simulated = [r.name for r in radios if self.backends[r.backend].traits.simulated]
            for index, radio in enumerate(radios):
                if self.backends[radio.backend].traits.composes is not None:
                    raise ConfigError(
                        f"{where}radios.{index}.backend: radio '{radio.name}' runs backend "
                        f"'{radio.backend}', which chooses another backend when it starts; "
                        "name that backend instead"
                    )
            if simulated and len(simulated) < len(radios):
                raise ConfigError(
                    f"{where}radios: simulated radios ({', '.join(simulated)}) cannot serve beside "
                    "real ones (results say simulated for all devices or none); use only "
                    "simulated or only real radios"
                )
        return self.resolve([r.backend for r in radios], settings.plugins)


class RegisteredBackends:
    """What a backend factory gets besides its settings: every registered backend, by name, so
    a composite backend can build others from their own ``[backends.<name>]`` settings."""

    def __init__(self, catalog: PluginCatalog, settings: Any) -> None:
        self._catalog = catalog
        self._settings = settings

    def names(self) -> list[str]:
        return sorted(self._catalog.backends)

    def traits(self, name: str) -> BackendTraits:
        return self._registration(name).traits

    def build(self, name: str) -> Any:
        """A new, unstarted instance of backend ``name``."""
        registration = self._registration(name)
        return registration.factory(self._settings.backend_settings(name), self)

    def _registration(self, name: str) -> BackendRegistration:
        try:
            return self._catalog.backends[name]
        except KeyError:
            raise ConfigError(
                f"backend '{name}' is not a known backend; available: {', '.join(self.names())}"
            ) from None


def _check_settings_model(model: object, what: str) -> None:
    """A settings model is a pydantic class whose every field has a default: each section is
    validated whenever the settings load, whether or not its plugin or backend runs."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"{what} must be a pydantic BaseModel class, not {model!r}")
    required = [field for field, info in model.model_fields.items() if info.is_required()]
    if required:
        raise ConfigError(
            f"{what} ({model.__name__}) has settings without a default: {', '.join(required)}; "
            "give each a default (and fail where it is used if it is still unset)"
        )


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


def inject_settings(plugin: object, name: str, settings: Any) -> None:
    """Give a plugin that declares ``settings_model`` its validated section as
    ``plugin.settings`` (before any of its hooks runs)."""
    if getattr(plugin, "settings_model", None) is not None:
        plugin.settings = settings.section(name)  # type: ignore[attr-defined]


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
    try:
        pm.check_pending()  # the catalog refused unknown hooks already; this keeps it so
    except PluginValidationError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    if trace:
        pm.add_hookcall_monitoring(_trace_before, _trace_after)
    return pm


def check_hook_rules(pm: pluggy.PluginManager, plugin: object) -> None:
    """Raise ConfigError ("it ...", naming the hook) if ``plugin`` (registered on ``pm``)
    implements a hook that does not exist (a misspelling would otherwise never run), has an
    ``async def`` implementation of a synchronous hook (its coroutine would never be awaited),
    or wraps a hook the core calls one implementation at a time."""
    known = sorted(
        n
        for n in dir(pm.hook)
        if n.startswith(f"{hookspecs.PROJECT}_") and getattr(pm.hook, n).has_spec()
    )
    # pluggy's check_pending() finds the same unknown hooks; this names the closest real one
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "the hooks are in mcp_ble.core.hookspecs"
            )
            raise ConfigError(f"it implements unknown hook '{caller.name}'; {hint}")
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.name not in hookspecs.MAY_BE_ASYNC and _is_async(impl.function):
                raise ConfigError(
                    f"it implements synchronous hook '{caller.name}' with async def; "
                    f"make it a plain def (start background work with app.spawn)"
                )
            if caller.name in hookspecs.MAY_BE_ASYNC and (impl.hookwrapper or impl.wrapper):
                raise ConfigError(
                    f"it wraps hook '{caller.name}', whose implementations the core "
                    f"awaits one by one; implement it plainly (tryfirst/trylast set the order)"
                )
    registered = {
        impl.function.__name__
        for c in pm.get_hookcallers(plugin) or []
        for impl in c.get_hookimpls()
    }
    for attr in dir(plugin):
        if attr.startswith(f"{hookspecs.PROJECT}_") and attr not in registered:
            if callable(getattr(plugin, attr, None)):
                raise ConfigError(
                    f"it defines '{attr}' without @hookimpl, so it would never be called; "
                    f"mark it with mcp_ble.core.hookspecs.hookimpl"
                )


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


async def call_in_order(
    pm: pluggy.PluginManager, name: str, kwargs: Mapping[str, Any], trace: bool = False
) -> None:
    """Call hook ``name``'s implementations one by one in plugin order (the settings file's),
    awaiting each coroutine before calling the next, so sync and async implementations see each
    other's changes in that order.

    A ``BleError`` (a plan hook refusing the operation) or ``ConfigError`` (a plugin that cannot
    start as configured) stops the call and reaches the caller.
    Any other exception is a plugin bug: it is logged and the next implementation still runs,
    so one bad plugin cannot take the server down."""
    caller = getattr(pm.hook, name)
    # pluggy's own call order: the last registered first, with tryfirst/trylast applied
    impls = list(reversed(caller.get_hookimpls()))
    if trace:
        _trace_before(name, impls, kwargs)
    for impl in impls:
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            if inspect.isawaitable(result):
                await result
        except (BleError, ConfigError):
            raise
        except Exception:
            log.exception("plugin hook %s failed (plugin '%s')", name, impl.plugin_name)
    if trace:
        print(f"[mcp-ble hook] {name} returned", file=sys.stderr, flush=True)


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
