"""Local Binance USDT-M futures exchange simulator (docs/simulator.md): WebSocket + REST on one loopback
port, served from a :class:`~.source.MarketSource` (synthetic market or a replayed recording)."""
