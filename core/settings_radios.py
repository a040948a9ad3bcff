"""The ``[[radios]]`` tables of the settings (several radios as one, core/fleet.py): each
radio's model is the fleet's keys (``name``, ``slots``) beside its backend's own settings, and
``backend`` picks which (a discriminated union), so a table is checked exactly as
``[backends.<name>]`` would be."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class RadioSpec:
    """One radio of the fleet: its name, its backend and that backend's validated settings."""

    name: str
    backend: str
    settings: Any
    #: The links it may hold at once, when the settings cap it (None: what the radio reports).
    slots: int | None = None


#: A radio's name: it labels metrics and results, so it is short and plain.
RADIO_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$"
#: The ``radio`` label of an operation no radio took (a connect finding every radio full or
#: none hearing the device): reserved, so a label value is a configured name or this.
NO_RADIO = "none"


class RadioBase(BaseModel):
    """The fleet's keys of a ``[[radios]]`` table; each backend's radio model adds its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="labels results, metrics and status")
    slots: int | None = Field(
        None, ge=1, le=64, description="links it may hold at once (default: what it reports)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(RADIO_NAME, value):
            raise ValueError(
                "a radio name is 1-32 letters, digits, '_', '.', ':' or '-', starting with a "
                "letter or digit (it labels results and metrics)"
            )
        if value == NO_RADIO:
            raise ValueError(
                f"'{NO_RADIO}' labels the metrics of connects no radio took; name the radio "
                "otherwise"
            )
        return value

    #: The backend's own settings model (set on each backend's radio model).
    own_model: ClassVar[type[BaseModel] | None] = None

    def backend_model(self) -> Any:
        """This radio's settings as its backend's own model (without the fleet's keys)."""
        own = self.own_model
        if own is None:
            return None
        return own.model_validate({k: getattr(self, k) for k in own.model_fields})


def radio_models(backend_models: dict[str, type[BaseModel] | None]) -> dict[str, type[RadioBase]]:
    """The ``[[radios]]`` table model of each backend."""
    return {name: _radio_model(name, model) for name, model in sorted(backend_models.items())}


def radio_type(models: dict[str, type[RadioBase]]) -> Any:
    """The type of one ``[[radios]]`` table: one of ``models``, chosen by ``backend``."""
    if len(models) > 1:
        return Annotated[Union[tuple(models.values())], Field(discriminator="backend")]  # noqa: UP007
    return next(iter(models.values()), RadioBase)


def _radio_model(name: str, model: type[BaseModel] | None) -> type[RadioBase]:
    """The model of a ``[[radios]]`` table of backend ``name``: the fleet's keys and the
    backend's own settings side by side."""
    bases: Any = (RadioBase,) if model is None else (RadioBase, model)
    tag: Any = Literal[name]
    radio = cast(
        "type[RadioBase]",
        create_model(
            f"Radio_{name}",
            __base__=bases,
            backend=(tag, Field(description="the backend this radio runs")),
        ),
    )
    radio.own_model = model
    return radio


def check_fleet(backend: str, backend_set: bool, radios: list[Any]) -> None:
    """Rules across the tables: ``backend`` and ``[[radios]]`` not both, one name per radio.
    (Which backends may serve together is checked with their traits, in the catalog.)"""
    if not radios:
        return
    if backend_set and backend != "auto":
        raise PydanticCustomError(
            "fleet",
            "backend = '{backend}' and [[radios]] are both set; keep one: one radio is "
            "backend = ..., several are [[radios]] tables",
            {"backend": backend},
        )
    seen: dict[str, int] = {}
    for index, radio in enumerate(radios):
        if radio.name in seen:
            raise PydanticCustomError(
                "fleet",
                "two radios are named '{name}' (radios.{first} and radios.{index}); give each "
                "[[radios]] table its own name",
                {"name": radio.name, "first": seen[radio.name], "index": index, "at": index},
            )
        seen[radio.name] = index
