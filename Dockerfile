# One image for every campus-iot process: `campus hub serve|ingest|migrate`, `campus agent run`,
# `campus sim fleet`. docker-compose.yml picks the sub-command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 campus \
    && useradd --system --uid 10001 --gid campus --home-dir /var/lib/campus \
        --shell /usr/sbin/nologin campus \
    && mkdir -p /var/lib/campus/agent /var/lib/campus/hub \
    && chown -R campus:campus /var/lib/campus

COPY . /tmp/src
RUN pip install /tmp/src && rm -rf /tmp/src

USER campus
WORKDIR /var/lib/campus
ENTRYPOINT ["campus"]
CMD ["--help"]
