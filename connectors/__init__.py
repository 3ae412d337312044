"""Channel connectors: one module per channel, each speaking one protocol."""
