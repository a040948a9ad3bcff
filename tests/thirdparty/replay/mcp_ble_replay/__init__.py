"""mcp-ble-replay: a backend that plays back a recorded session, and a scan-budget plugin."""
