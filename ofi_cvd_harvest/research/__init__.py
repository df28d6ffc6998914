"""Signal study (docs/research.md): forward returns after events and the information
coefficient of the z signals, per date × symbol, downstream of the five derived tables."""
