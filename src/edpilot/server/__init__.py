"""`edpilot serve`: an OpenAI-compatible HTTP service that batches live requests and tunes itself on them.

    backends = open_backends(device="sim", engine_options=EngineOptions(filler_text=True), sim_speed=10)
    run_server(backends, session, settings=ServeSettings(port=8000), online=True, ...)

- `app`: FastAPI routes (/v1/completions, /v1/chat/completions, /v1/models, /healthz, /metrics, /openapi.json),
  OpenAI errors.
- `service`, `protocol`: one request answered (whole or SSE) in the OpenAI wire shapes, and their OpenAPI.
- `launch`: uvicorn with a graceful stop; `connections`: a read deadline and a cap on connections.
- `metrics`, `board`: Prometheus metrics of the server, and the board's rails and power.
- `worker`: the core's StaticBatcher, live: an asyncio queue and one worker thread for batches.
- `driver`: rounds measured on live traffic and recorded by the same TuningSession as `tune`.
- `estimator`: arrival rate and lengths of live traffic, and a change-point test for drift.
- `plan`: online tuning, a tuning run's choice (`--config`), or a fixed config.
Needs the `[serve]` extra (fastapi, uvicorn, prometheus-client). Raises ConfigError for bad settings.
"""

from __future__ import annotations

from edpilot.server.launch import ServeSettings, run_server, serving_sim_speed

__all__ = ["ServeSettings", "run_server", "serving_sim_speed"]
