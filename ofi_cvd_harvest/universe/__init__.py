"""The symbol universe and its capture shards: plain Python, no Dagster (docs/deploy.md
"Capture shards"). ``market`` reads the universe from the exchange, ``plan`` cuts it into
shards, ``cli`` prints the plan (``ofi-cvd-harvest shards``)."""
