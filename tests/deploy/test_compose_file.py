"""The production topology files (docker-compose.yml and deploy/) are consistent.

No container engine runs in CI, so these tests check structure only: services, dependencies,
volumes, mounted files, required secrets, and that the broker ACL is the one the tests enforce.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from campus_config import PLACEHOLDER_SECRETS
from cloud_hub.broker import acl_text, free_port
from edge_agent.settings import load_agent_settings
from simulators.fleet import plan_city, run_fleet
from simulators.signals import SimClock

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# created by the operator (deploy/mosquitto/README.md), never committed
OPERATOR_FILES = {
    *(DEPLOY / "mosquitto" / name for name in ("passwd", "passwd-d2", "passwd-central")),
    DEPLOY / "certs",
    DEPLOY / "certs" / "ca.crt",
}
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def depends_on(service: dict[str, Any]) -> list[str]:
    """Targets of the short (list) or long (mapping) ``depends_on`` form."""
    return list(service.get("depends_on", []))


def volume_sources(service: dict[str, Any]) -> list[str]:
    return [
        v.split(":", 1)[0] if isinstance(v, str) else v["source"]
        for v in service.get("volumes", [])
    ]


def test_compose_describes_every_production_service(compose):
    expected = {
        "broker",
        "postgres",
        "influxdb",
        "hub-migrate",
        "hub",
        "hub-ingest",
        "agent",
        "simulator",
        "grafana",
        # the tiers: a second district's regional hub, and the central hub above both
        "broker-d2",
        "hub-d2-migrate",
        "hub-d2",
        "simulator-d2",
        "agent-d2",
        "central-broker",
        "central-migrate",
        "central-hub",
    }
    assert expected <= set(compose["services"])


def test_every_service_has_an_image_or_a_build(compose):
    missing = [
        name for name, s in compose["services"].items() if not ("image" in s or "build" in s)
    ]
    assert missing == []


def test_every_dependency_is_a_service_of_the_file(compose):
    services = compose["services"]
    unknown = {
        (name, dep) for name, s in services.items() for dep in depends_on(s) if dep not in services
    }
    assert unknown == set()


def test_hub_processes_wait_for_the_schema_migration(compose):
    for name in ("hub", "hub-ingest"):
        condition = compose["services"][name]["depends_on"]["hub-migrate"]["condition"]
        assert condition == "service_completed_successfully"
    assert (
        compose["services"]["hub-migrate"]["depends_on"]["postgres"]["condition"]
        == "service_healthy"
    )
    assert "healthcheck" in compose["services"]["postgres"]


def test_every_named_volume_is_declared(compose):
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for s in compose["services"].values()
        for source in volume_sources(s)
        if not source.startswith((".", "/"))
    }
    assert used <= declared
    assert {"postgres-data", "influxdb-data", "mosquitto-data"} <= used


def test_every_bind_mounted_repo_file_exists_except_the_operators_secrets(compose):
    mounted = {
        (ROOT / source).resolve()
        for s in compose["services"].values()
        for source in volume_sources(s)
        if source.startswith(".")
    }
    missing = {path for path in mounted if not path.exists()} - OPERATOR_FILES
    assert missing == set()


def test_ingest_workers_scale_out_through_a_shared_subscription_with_distinct_client_ids(compose):
    ingest = compose["services"]["hub-ingest"]
    assert ingest["deploy"]["replicas"] >= 2
    assert ingest["environment"]["CAMPUS_HUB_SHARE_GROUP"]
    assert "CAMPUS_HUB_BROKER__CLIENT_ID=hub-ingest-$$(hostname)" in " ".join(ingest["entrypoint"])


def listeners(conf: str) -> dict[str, list[str]]:
    """Mosquitto config lines by listener port ("" for the global section)."""
    by_port: dict[str, list[str]] = {"": []}
    current = ""
    for line in conf.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("listener "):
            current = line.split()[1]
            by_port[current] = []
        else:
            by_port[current].append(line)
    return by_port


def test_the_deployed_broker_binds_client_ids_to_usernames_and_persists_promptly():
    from cloud_hub.broker import persistence_lines

    conf = listeners((DEPLOY / "mosquitto" / "mosquitto.conf").read_text())
    assert "use_username_as_clientid true" in conf["8883"], "a gateway could take another's id"
    assert "use_username_as_clientid true" not in conf["8884"], "hub workers need own client ids"
    assert "acl_file /mosquitto/config/site-acl" in conf["1883"]
    persistence = persistence_lines("/mosquitto/data")
    assert [line for line in conf[""] if line in persistence] == persistence


def test_hub_processes_use_the_internal_hub_listener_and_gateways_the_published_one(compose):
    hub_env = compose["services"]["hub"]["environment"]
    assert hub_env["CAMPUS_HUB_BROKER__PORT"] == "8884"
    assert "8884" not in " ".join(compose["services"]["broker"]["ports"])


def test_only_the_tls_listener_of_the_broker_is_published(compose):
    assert compose["services"]["broker"]["ports"] == ["8883:8883"]


def test_the_deployed_acl_is_the_one_the_tests_enforce():
    assert (DEPLOY / "mosquitto" / "acl").read_text() == acl_text()


def test_env_example_provides_every_required_variable_as_a_refused_placeholder():
    required = set(REQUIRED.findall((ROOT / "docker-compose.yml").read_text()))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example)
    secrets = {k: v for k, v in example.items() if k.endswith(("PASSWORD", "TOKEN"))}
    assert {"HUB_MQTT_PASSWORD", "AGENT_MQTT_PASSWORD"} <= set(secrets)
    assert set(secrets.values()) <= PLACEHOLDER_SECRETS


def test_the_agent_config_loads_and_points_at_the_compose_broker_over_tls(monkeypatch):
    monkeypatch.setenv("CAMPUS_AGENT_HUB__PASSWORD", "not-a-placeholder")
    settings = load_agent_settings(DEPLOY / "agent" / "agent.yaml")
    assert (settings.hub.host, settings.hub.port) == ("broker", 8883)
    assert settings.hub.tls is not None
    assert settings.devices


def test_the_grafana_dashboard_uses_only_provisioned_data_sources():
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "campus-overview.json").read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert used and used <= uids


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_dev_cert_script_makes_a_broker_certificate_the_ca_verifies(tmp_path):
    out = tmp_path / "certs"
    subprocess.run(
        ["sh", str(DEPLOY / "make-dev-certs.sh"), str(out), "hub.example.edu"],
        check=True,
        capture_output=True,
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", out / "ca.crt", out / "server.crt"], capture_output=True
    )
    assert verify.returncode == 0
    names = subprocess.run(
        ["openssl", "x509", "-in", out / "server.crt", "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:broker" in names and "DNS:hub.example.edu" in names
    assert (out / "ca.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("agent_file", "simulator", "school"),
    [("agent.yaml", "simulator", 0), ("agent-d2.yaml", "simulator-d2", 1)],
    ids=["d1", "d2"],
)
async def test_compose_agent_config_matches_what_the_compose_simulator_serves(
    compose: dict[str, Any], agent_file: str, simulator: str, school: int
) -> None:
    """Each agent polls exactly the devices its simulator's `campus sim fleet --seed 1` serves
    for its school (school i on Modbus port 5020 + i)."""
    agent = yaml.safe_load((ROOT / "deploy/agent" / agent_file).read_text())
    command = compose["services"][simulator]["command"]
    assert command[command.index("--seed") + 1] == "1"
    assert command[command.index("--base-port") + 1] == "5020"
    districts = int(command[command.index("--districts") + 1])
    assert districts == school + 1
    plan = plan_city(districts, 1, seed=1)
    fleet = await run_fleet(
        plan, site_broker_port=free_port(), clock=SimClock(), base_port=free_port()
    )
    try:
        served = fleet.agent_device_configs(plan.schools[school].id)
    finally:
        await fleet.stop()
    assert agent["gateway"]["id"] == plan.schools[school].gateway_id
    assert agent["gateway"]["site"] == plan.site_identity(plan.schools[school].id)
    for device in served:
        device.get("modbus", {}).update(host=simulator, port=5020 + school)
    assert agent["devices"] == served
    broker = command[command.index("--site-broker-host") + 1]
    assert agent["hub"]["host"] == agent["site_broker"]["host"] == broker


def test_every_hub_process_writes_to_the_influxdb_grafana_reads(compose) -> None:
    for name in ("hub", "hub-ingest"):
        env = compose["services"][name]["environment"]
        assert env["CAMPUS_HUB_INFLUX__URL"] == "http://influxdb:8086"
        assert env["CAMPUS_HUB_INFLUX__BUCKET"] == "${INFLUXDB_BUCKET:-telemetry}"
        assert compose["services"][name]["depends_on"]["influxdb"]["condition"] == "service_healthy"


REGIONAL_HUBS = {"hub": ("region-d1", "broker"), "hub-d2": ("region-d2", "broker-d2")}


def test_each_regional_hub_forwards_to_the_central_broker_as_its_own_node_from_a_kept_outbox(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, (node, broker) in REGIONAL_HUBS.items():
        env = services[name]["environment"]
        assert env["CAMPUS_HUB_ROLE"] == "regional"
        assert env["CAMPUS_HUB_BROKER__HOST"] == broker
        assert env["CAMPUS_HUB_FEDERATION__NODE_ID"] == node
        assert env["CAMPUS_HUB_FEDERATION__CENTRAL__HOST"] == "central-broker"
        assert env["CAMPUS_HUB_FEDERATION__CENTRAL__PORT"] == "8883"  # the regional hubs' listener
        outbox = Path(env["CAMPUS_HUB_FEDERATION__OUTBOX_PATH"]).parent
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert not mounts[str(outbox)].startswith("."), "the outbox must be on a named volume"
    # only the serving process forwards: the ingest replicas share district d1's subscription
    assert "CAMPUS_HUB_FEDERATION__NODE_ID" not in services["hub-ingest"]["environment"]


def test_the_central_hub_consumes_its_own_broker_and_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    central = services["central-hub"]["environment"]
    assert central["CAMPUS_HUB_ROLE"] == "central"
    assert (central["CAMPUS_HUB_BROKER__HOST"], central["CAMPUS_HUB_BROKER__PORT"]) == (
        "central-broker",
        "8884",
    )
    databases = {
        name: services[name]["environment"]["CAMPUS_HUB_DATABASE_URL"].rsplit("/", 1)[1]
        for name in ("hub", "hub-d2", "central-hub")
    }
    assert sorted(databases.values()) == ["campus", "campus_central", "campus_d2"]
    created = (DEPLOY / "postgres" / "init" / "20-tier-databases.sh").read_text()
    assert "campus_d2 campus_central" in created
    assert services["central-hub"]["depends_on"]["central-migrate"]["condition"] == (
        "service_completed_successfully"
    )
    passwords = {
        services[b]["volumes"][3].split(":")[0] for b in ("broker", "broker-d2", "central-broker")
    }
    assert len(passwords) == 3, "each broker has its own password file"


def test_regional_hubs_start_without_waiting_for_the_central_hub(
    compose: dict[str, Any],
) -> None:
    """Their uplinks wait for the central hub's session marker instead (a district hub serves its
    gateways whatever the central hub does); the central hub's healthcheck says it subscribed."""
    services = compose["services"]
    central = services["central-hub"]
    port = central["environment"]["CAMPUS_HUB_API__PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(central["healthcheck"]["test"])
    for name in REGIONAL_HUBS:
        assert "central-hub" not in services[name]["depends_on"]
