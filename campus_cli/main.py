"""The ``campus`` command: ``agent …``, ``hub …``, ``sim …`` and ``demo``."""

from __future__ import annotations

import typer

from campus_cli.demo import demo
from campus_cli.poke import app as poke_app
from cloud_hub.cli import app as hub_app
from cloud_hub.sample_config import app as hub_sample_app
from edge_agent.cli import app as agent_app
from edge_agent.field.cli import app as field_app
from simulators.cli import app as sim_app

app = typer.Typer(
    name="campus",
    help="campus-iot: edge agents, the cloud hub and simulated school fleets.",
    no_args_is_help=True,
)
agent_app.add_typer(field_app)  # scan, registers, doctor: the technician's field tools
app.add_typer(agent_app, name="agent", help="The edge agent that runs on a school's gateway.")
hub_app.add_typer(hub_sample_app)  # sample-config
app.add_typer(hub_app, name="hub", help="The regional / central cloud hub.")
app.add_typer(sim_app, name="sim", help="Simulated devices and fleets of schools.")
app.command()(demo)
app.add_typer(poke_app, name="poke")

if __name__ == "__main__":
    app()
