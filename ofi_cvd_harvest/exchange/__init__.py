"""I/O to the exchange: the asyncio WebSocket client (reconnect, roll-over) and REST client."""
