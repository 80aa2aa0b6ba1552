"""What API authentication costs: argon2 per login, and the token check on every request.

Run: ``.venv/bin/python bench/auth.py [requests]``. The reference is ``GET /healthz`` on the same
app (one ``SELECT 1``, no token): the difference to ``GET /api/v1/auth/me`` is the token check,
and ``GET /api/v1/schools`` adds the scoped school query. Times are CPU seconds of this process
(the TestClient runs the app in-process), so a busy machine skews them less than wall time.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from cloud_hub.api.main import create_app
from cloud_hub.auth.passwords import hash_password, verify_password
from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token
from cloud_hub.auth.users import add_user
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings


def cpu_ms(work: object, repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        work()  # type: ignore[operator]
    return (time.process_time() - start) / repeat * 1000


def seed(url: str) -> str:
    """12 schools in 3 districts, and a city admin's token."""
    from tests.hub.builders import SITE, heartbeat

    engine = make_engine(url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    worker = IngestWorker(sessions)
    for d in range(3):
        for s in range(4):
            site = SITE.model_copy(update={"district_id": f"d{d}", "school_id": f"s{d}-{s}"})
            worker.process(*heartbeat(f"gw-{d}-{s}", seq=1, site=site))
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        user = add_user(
            session, username="admin", password="bench-password-1", role=Role.CITY_ADMIN,
            scope=Scope.parse("city:city-1"), now=now,
        )  # fmt: skip
        token, _ = issue_token(session, user=user, now=now, ttl=timedelta(hours=1))
    engine.dispose()
    return token


def main(requests: int) -> None:
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    digest = hash_password("correct horse battery staple")
    hashing = cpu_ms(lambda: hash_password("correct horse battery"), 5)
    verifying = cpu_ms(lambda: verify_password(digest, "wrong password!"), 5)
    print(f"argon2id hash:   {hashing:7.1f} ms CPU")
    print(f"argon2id verify: {verifying:7.1f} ms CPU")
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'hub.db'}"
        token = seed(url)
        app = create_app(HubSettings(database_url=url, development=True), run_ingest=False)
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(app) as client:
            for path, auth in (("/healthz", {}), ("/api/v1/auth/me", headers),
                               ("/api/v1/schools", headers)):  # fmt: skip
                assert client.get(path, headers=auth).status_code == 200
                per = cpu_ms(lambda p=path, a=auth: client.get(p, headers=a), requests)
                print(f"GET {path:<18} {per:7.2f} ms CPU/request ({requests} requests)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
