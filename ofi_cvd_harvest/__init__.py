"""ofi-cvd-harvest: Binance USDT-M order-flow harvester (raw capture, derived OFI/CVD tables,
DQ gate). Plain Python packages (capture, signals, dq, sim) with a thin Dagster layer on top."""

__version__ = "0.1.0"
