"""Alerts as operations staff handle them: the lifecycle table, levels, escalation."""
