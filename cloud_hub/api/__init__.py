"""The hub's REST API (FastAPI)."""
