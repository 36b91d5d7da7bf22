"""Portolan's Ocean test integration: teams, services and repositories from a JSON file."""

import json
from typing import Any

from port_ocean.context.ocean import ocean


def _data() -> dict[str, Any]:
    with open(ocean.integration_config["data_file"]) as f:
        return json.load(f)


@ocean.on_resync("team")
async def resync_teams(kind: str) -> list[dict[str, Any]]:
    return _data().get("teams", [])


@ocean.on_resync("service")
async def resync_services(kind: str):  # an async generator: Ocean upserts batch by batch
    services = _data().get("services", [])
    for i in range(0, len(services), 2):
        yield services[i : i + 2]


@ocean.on_resync("repository")
async def resync_repositories(kind: str) -> list[dict[str, Any]]:
    # Mapped from the services through itemsToParse: .repos
    return _data().get("services", [])
