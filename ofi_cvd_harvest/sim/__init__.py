"""Local Binance USDT-M futures exchange simulator (SPEC §2): WebSocket + REST on one loopback
port, served from a :class:`~.source.MarketSource` (synthetic market or a replayed recording)."""
