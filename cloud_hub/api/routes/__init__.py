"""Thin routers: each validates its query, calls cloud_hub.db and maps rows to …Public schemas."""
