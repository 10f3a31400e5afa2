"""The live pipeline: a real edge server, a trace-paced uplink on loopback, and a device streaming frames through
them in real time, checked against the simulator replaying the same episode.

``server`` (aiohttp + ONNX Runtime) serves the profile's server model at each offload resolution and its teacher;
``pacer`` releases an upload's bytes onto a loopback socket at the times a bandwidth trace allows.
"""

from .pacer import PacerProcess, Route, Uplink
from .run import LiveConfig, run_live
from .server import (
    ServedModels,
    ServerOptions,
    ServerProcess,
    build_app,
    cached_onnx,
    default_cache_dir,
    parse_answer,
    serve,
)

__all__ = ["LiveConfig", "PacerProcess", "Route", "ServedModels", "ServerOptions", "ServerProcess", "Uplink", "build_app",
           "cached_onnx", "default_cache_dir", "parse_answer", "run_live", "serve"]
