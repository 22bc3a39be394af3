"""The edge of coedit: config, auth, HTTP routes, the WebSocket session loop, metrics, CLI."""
