"""Built-in optimization plugins. Each module is one plugin, registered like a third-party one."""
