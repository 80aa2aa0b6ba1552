"""Hub ingest: MQTT consumer, validation, dedupe and storage of uplink messages."""
