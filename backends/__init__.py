"""Built-in BLE backends. Each subpackage is a plugin that registers one backend."""
