"""Market data sources (synthetic, Cboe delayed quotes, files), the Cboe JSON parser and the calendar."""
