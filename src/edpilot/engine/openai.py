"""`--engine openai:URL`: any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, edpilot serve).

A batch of b requests is sent concurrently to /v1/completions with streaming; each request's TTFT and
output are measured on its own, and a timeout or an error is reported per request, not raised.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from edpilot.clock import WallClock
from edpilot.engine.base import Completion
from edpilot.errors import ConfigError
from edpilot.workload import Request

log = logging.getLogger(__name__)


class OpenAIEngine:
    """Streams completions from an OpenAI-compatible HTTP server, one connection per request."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "default",
        timeout_s: float = 120.0,
        fixed_output_length: bool = True,
    ) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--engine openai:URL needs an http(s) URL, got {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = parts.path.rstrip("/") + "/v1/completions"
        if parts.path.rstrip("/").endswith("/v1"):
            self.path = parts.path.rstrip("/") + "/completions"
        self.base_url, self.model, self.timeout_s = base_url, model, timeout_s
        self.fixed_output_length = fixed_output_length
        self.clock = WallClock()

    def generate(self, batch: Sequence[Request]) -> list[Completion]:
        """Send every request at once; wait for all of them."""
        start_s = self.clock.now_s()
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            return list(pool.map(lambda r: self._one(r, start_s), batch))

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

    def _one(self, request: Request, start_s: float) -> Completion:
        body = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": 0,
            "stream": True,
        }
        if self.fixed_output_length:
            body["ignore_eos"] = True  # vLLM and llama.cpp server honour it; others ignore it
        conn = self._connection()
        text: list[str] = []
        chunks, ttft_s, usage_tokens = 0, None, None
        try:
            conn.request("POST", self.path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(300).decode("utf-8", "replace").strip()
                return Completion("", 0, None, error=f"HTTP {resp.status}: {detail}")
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if event.get("usage"):
                    usage_tokens = event["usage"].get("completion_tokens")
                piece = "".join(c.get("text", "") for c in event.get("choices", []))
                if piece:
                    if ttft_s is None:
                        ttft_s = self.clock.now_s() - start_s
                    chunks += 1
                    text.append(piece)
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
            return Completion("".join(text), chunks, ttft_s, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        return Completion("".join(text), usage_tokens or chunks, ttft_s)

    def describe(self) -> dict[str, object]:
        """Server URL and model name."""
        return {"backend": "openai", "url": self.base_url, "model": self.model, "timeout_s": self.timeout_s}
