"""The esphome backend plugin (optional extra ``mcp-ble[esphome]``): an ESPHome Bluetooth proxy
(an ESP32 running ESPHome's ``bluetooth_proxy``) over the ESPHome native API, through
aioesphomeapi and bleak-esphome."""

from __future__ import annotations

import binascii
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mcp_ble.core.hookspecs import hookimpl
from mcp_ble.core.traits import BackendTraits, Dependency

KEY_HINT = "the proxy's api: encryption: key: from its ESPHome YAML, 44 base64 characters"


def check_key(key: str) -> str:
    """The Noise pre-shared key must be base64 of exactly 32 bytes. Never echoes the key."""
    try:
        raw = binascii.a2b_base64(key.strip())
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64; use {KEY_HINT}") from None
    if len(raw) != 32:
        raise ValueError(f"decodes to {len(raw)} bytes, not 32; use {KEY_HINT}")
    return key.strip()


class EsphomeSettings(BaseModel):
    """``[backends.esphome]``"""

    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(
        None, description="the proxy's host name or IP address (e.g. 'living-room.local')"
    )
    port: int = Field(6053, ge=1, le=65535, description="the native API port")
    # exclude=True: never dumped; `mcp-ble config show` shows one that is set as "**********".
    noise_psk: SecretStr | None = Field(
        None, exclude=True, description="the API encryption key (base64); prefer noise_psk_env"
    )
    noise_psk_env: str | None = Field(
        None, description="name of an environment variable holding the API encryption key"
    )
    password: SecretStr | None = Field(
        None, exclude=True, description="the legacy API password, for proxies that still use one"
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, le=120, description="give up reaching the proxy's API after this long"
    )
    keepalive_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="ping the proxy this often; no answer within 4.5 pings = radio lost",
    )

    @field_validator("noise_psk")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _key_from_environment(self) -> EsphomeSettings:
        if self.noise_psk_env is None:
            return self
        if self.noise_psk is not None:
            raise ValueError("set noise_psk or noise_psk_env, not both")
        value = os.environ.get(self.noise_psk_env)
        if not value:
            raise ValueError(
                f"noise_psk_env names the environment variable {self.noise_psk_env}, "
                "which is not set; export it with the proxy's encryption key"
            )
        try:
            check_key(value)
        except ValueError as exc:
            raise ValueError(f"environment variable {self.noise_psk_env}: {exc}") from None
        return self

    def key(self) -> str | None:
        """The Noise key in force (from noise_psk or the environment), or None: plaintext."""
        if self.noise_psk is not None:
            return self.noise_psk.get_secret_value().strip()
        if self.noise_psk_env is not None:
            return os.environ[self.noise_psk_env].strip()
        return None


def _create(settings: EsphomeSettings, backends: Any) -> Any:
    from mcp_ble.core.errors import BackendUnavailable

    from .backend import EsphomeBackend

    if not settings.host:
        # At build time: `mcp-ble doctor` reports an unconfigured backend it was not asked
        # about as skipped, not as a problem.
        raise BackendUnavailable(
            "The esphome backend has no proxy to talk to: [backends.esphome] host is not set",
            "set host to the proxy's host name or IP address (and noise_psk_env for its key)",
        )
    return EsphomeBackend(
        settings.host,
        settings.port,
        noise_psk=settings.key(),
        password=settings.password.get_secret_value() if settings.password else None,
        connect_timeout_s=settings.connect_timeout_s,
        keepalive_s=settings.keepalive_s,
        key_env=settings.noise_psk_env,
    )


@hookimpl
def mcp_ble_register_backends(register: Any) -> None:
    extra = "esphome backend (optional extra: pip install 'mcp-ble[esphome]')"
    register(
        "esphome",
        _create,
        settings=EsphomeSettings,
        description="an ESPHome Bluetooth proxy over the native API (bleak-esphome)",
        traits=BackendTraits(
            dependencies=(
                Dependency("aioesphomeapi", extra, extra="esphome"),
                Dependency("bleak-esphome", extra, extra="esphome"),
                Dependency("habluetooth", extra, extra="esphome"),
            ),
        ),
    )
