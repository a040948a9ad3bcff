"""mcp-ble core: settings, hook specifications, plugin manager, device state, MCP server, CLI."""

__version__ = "0.1.0"
