"""Where hub ingest copies what it stored, beside its own database (InfluxDB 2)."""
