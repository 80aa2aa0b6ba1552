"""Edge rules: conditions over readings and the school calendar, graded events, persisted state."""

from edge_agent.rules.calendar import SchoolCalendar, load_calendar
from edge_agent.rules.engine import Firing, RuleConfigError, RuleDevice, RuleEngine, compile_rules
from edge_agent.rules.lifecycle import Report
from edge_agent.rules.store import RuleStore

__all__ = [
    "Firing",
    "Report",
    "RuleConfigError",
    "RuleDevice",
    "RuleEngine",
    "RuleStore",
    "SchoolCalendar",
    "compile_rules",
    "load_calendar",
]
