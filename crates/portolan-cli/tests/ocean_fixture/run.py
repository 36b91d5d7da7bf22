"""Run the fixture integration once (ONCE listener) with Ocean's HTTP server on 127.0.0.1.

Usage (from this folder): python run.py <port>
Ocean hard-codes host 0.0.0.0 in port_ocean.run.run; it looks uvicorn.run up at call time, so
replacing it here keeps the server off the network.
"""

import importlib
import sys

import uvicorn

# `port_ocean.run` the attribute is the function; the module is what calls uvicorn.run.
ocean_run = importlib.import_module("port_ocean.run")

_uvicorn_run = uvicorn.run


def _run_on_loopback(app, *args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["host"] = "127.0.0.1"
    return _uvicorn_run(app, *args, **kwargs)


uvicorn.run = _run_on_loopback

ocean_run.run(
    path=".",
    log_level="INFO",
    port=int(sys.argv[1]),
    initialize_port_resources=True,
    config_override={"event_listener": {"type": "ONCE"}},
)
