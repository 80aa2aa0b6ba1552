"""The bureau's KPIs per school, district and city, each beside its 2025 target."""
