"""``campus hub sample-config``: a commented hub.yaml with every setting, like the agent's."""

from __future__ import annotations

import sys

import typer

app = typer.Typer()

SAMPLE_CONFIG = """\
# campus hub configuration (hub.yaml).
# Precedence: defaults < this file < CAMPUS_HUB_* environment (`__` nests, e.g.
# CAMPUS_HUB_BROKER__PASSWORD) < command-line flags.
# Check it with `campus hub validate -c hub.yaml` (it also connects to the database and broker).

role: regional                   # regional (a district's hub) | central (the city's)
database_url: sqlite:///var/hub/hub.db   # or postgresql://user@host/db (psycopg 3 is used)

broker:                          # the hub broker the gateways publish to
  host: 127.0.0.1
  port: 8883
  username: hub                  # the broker enforces client id = username
  password: change-me            # refused outside development; prefer CAMPUS_HUB_BROKER__PASSWORD
  tls:
    ca_file: /etc/campus/ca.pem  # the CA that signed the broker's certificate
    # cert_file: /etc/campus/hub.pem   # optional client certificate
    # key_file: /etc/campus/hub.key
  # client_id: null              # only for a listener that does not bind client id to username
  # keepalive_s: 30              # 5..3600

# share_group: null              # several ingest workers: MQTT shared subscription group name

api:                             # the REST API and the operations dashboard (campus hub serve)
  host: 127.0.0.1
  port: 8080                     # 0 = any free port

# offline_after_s: 30            # a gateway without a heartbeat this long counts as offline
# health_check_s: 5              # offline alarms and escalation are checked this often
# device_offline_alarm_s: 60     # overrides every profile's offline_alarm.after_s (drills)

# escalation:                    # open alerts nobody acknowledged go up a tier (docs/ALERTS.md)
#   levels: [I, II]
#   district_after_s: 300
#   city_after_s: 900

# webhooks:                      # alert transitions POSTed, HMAC-signed, retried (docs/ALERTS.md)
#   -
#     name: duty-desk            # letters, digits, _ and -: names its delivery log rows
#     url: https://duty.example.edu.cn/campus-alerts
#     secret: change-me          # prefer CAMPUS_HUB_WEBHOOKS in the environment
#     levels: [I, II]
#     max_attempts: 8
#     timeout_s: 5

# auth:                          # API sign-in (always on; add users with `campus hub user add`)
#   token_ttl_s: 43200           # session and API token lifetime
#   login_window_s: 300          # login rate limit: attempts per user / per source in the window
#   login_max_per_user: 5
#   login_max_per_source: 20
#   oidc:                        # also accept JWTs from an identity provider
#     issuer: https://sso.example.edu.cn
#     audience: campus-hub
#     public_key_file: /etc/campus/oidc.pem
#     algorithms: [RS256, ES256]
#     role_claim: campus_role
#     scope_claim: campus_scope

# provisioning:                  # approving a gateway writes its broker access here
#   password_file: /etc/mosquitto/passwd
#   pid_file: /run/mosquitto/mosquitto.pid   # Mosquitto is reloaded (SIGHUP) after a change
#   ca_dir: /etc/campus/ca       # ca.crt / ca.key to sign gateway client certificates

# influx:                        # copy every stored window to InfluxDB 2 (Grafana reads it)
#   url: http://influxdb:8086
#   token: change-me             # refused outside development; prefer CAMPUS_HUB_INFLUX__TOKEN
#   org: campus
#   bucket: telemetry
#   batch_points: 5000           # points per gzip request
#   flush_interval_s: 1.0
#   max_buffer_points: 200000    # beyond this, new points are dropped and counted
#   timeout_s: 10.0
#   max_retry_after_s: 60.0      # longest Retry-After honoured on 429/503
#   shutdown_timeout_s: 5.0      # flush at most this long when the hub stops

# kpi:                           # lesson times for the lighting-compliance KPI
#   timezone: Asia/Shanghai
#   school_days: [0, 1, 2, 3, 4] # 0 = Monday
#   lesson_periods: ["08:00-12:00", "14:00-17:30"]

# federation:                    # role regional only: forward this district to the central hub
#   node_id: region-d01          # this hub's MQTT username on the central broker
#   central:                     # the central hub's broker (as a gateway's hub section)
#     host: central.example.edu.cn
#     port: 8883
#     password: change-me        # refused outside development; prefer the environment
#     tls:
#       ca_file: /etc/campus/certs/ca.crt
#     keepalive_s: 30
#   outbox_path: ./var/hub/federation-outbox.db  # what is not yet delivered: keep it
#   every_s: 30                  # how often to look for new rollups, reports and changes
#   fleet_every_s: 60            # school health report
#   kpi_every_s: 900             # district KPI snapshot
#   rollup_horizon_s: 7200       # periods re-checked for late windows

# development: false             # true allows placeholder passwords
"""


@app.command("sample-config")
def sample_config() -> None:
    """Print a commented sample hub.yaml."""
    sys.stdout.write(SAMPLE_CONFIG)
