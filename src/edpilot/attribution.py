"""Where an EDP gain comes from: energy, and the three parts of latency.

A request's latency is the sum of three waits, each measured per request and averaged over a window:

- fill wait F: from its arrival to the arrival of the last request of its batch (the batch filling up);
- queue wait Q: from then until its batch starts (the engine busy with earlier batches; a partial batch's
  max-wait timer also counts here);
- service S: its batch's start to end.

So L = F + Q + S exactly, and EDP = E · L with E the energy per request. Between a baseline b and a chosen
config c the EDP ratio factorises as

    EDP_c / EDP_b = (E_c / E_b) · (L_c / L_b),    ln(EDP_c / EDP_b) = ln(E_c / E_b) + ln(L_c / L_b),

and the latency term splits additively over its parts with the logarithmic mean M = (L_c − L_b) / ln(L_c / L_b)
(M = L_b when L_c = L_b): ln(L_c / L_b) = ΔF / M + ΔQ / M + ΔS / M. Each part's log term is its contribution;
the terms add up to the total exactly, `factor` = exp(term) multiply to the EDP ratio, and `share_pct` =
term / total · 100 add up to 100 % (a part that worked against the gain has a negative share).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

PARTS = ("fill_wait", "queue_wait", "service", "energy")


@dataclass(frozen=True)
class Side:
    """One config's means: energy per request (J) and the three latency parts (s)."""

    energy_per_request_j: float
    fill_wait_s: float
    queue_wait_s: float
    service_s: float

    @property
    def latency_s(self) -> float:
        """Mean latency: fill wait + queue wait + service."""
        return self.fill_wait_s + self.queue_wait_s + self.service_s

    @property
    def edp(self) -> float:
        """Energy per request × mean latency (J·s)."""
        return self.energy_per_request_j * self.latency_s

    @classmethod
    def from_stats(cls, d: Mapping[str, object]) -> Side | None:
        """From a summary's config dict (`energy_per_request_j`, `mean_fill_wait_s`, ...); None if any is missing."""
        keys = ("energy_per_request_j", "mean_fill_wait_s", "mean_queue_wait_s", "mean_service_s")
        values = [d.get(k) for k in keys]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return None
        side = cls(*(float(v) for v in values))  # type: ignore[arg-type]
        return side if side.energy_per_request_j > 0 and side.latency_s > 0 else None


@dataclass(frozen=True)
class Attribution:
    """The EDP change from a baseline to a chosen config, split into energy and the latency parts."""

    edp_ratio: float  # EDP_c / EDP_b
    terms: dict[str, float]  # part -> its log term; they add up to ln(edp_ratio)

    @property
    def log_total(self) -> float:
        """ln(EDP_c / EDP_b)."""
        return math.log(self.edp_ratio)

    @property
    def edp_change_pct(self) -> float:
        """EDP change in percent (negative: lower than the baseline)."""
        return 100.0 * (self.edp_ratio - 1.0)

    def factor(self, part: str) -> float:
        """How much this part alone multiplies the EDP (the factors multiply to `edp_ratio`)."""
        return math.exp(self.terms[part])

    def share_pct(self, part: str) -> float | None:
        """This part's share of the change, in percent (None when the EDP did not change)."""
        total = self.log_total
        return None if total == 0 else 100.0 * self.terms[part] / total

    def to_dict(self) -> dict[str, object]:
        """For --json and the run log's summary."""
        return {
            "edp_ratio": self.edp_ratio,
            "edp_change_pct": self.edp_change_pct,
            "parts": {
                p: {"log_term": self.terms[p], "factor": self.factor(p), "share_pct": self.share_pct(p)} for p in PARTS
            },
        }


def attribute(base: Side, chosen: Side) -> Attribution:
    """Split ln(EDP_c / EDP_b) into energy and the fill, queue and service parts of latency (module docstring)."""
    lb, lc = base.latency_s, chosen.latency_s
    mean_s = lb if lc == lb else (lc - lb) / math.log(lc / lb)
    terms = {
        "fill_wait": (chosen.fill_wait_s - base.fill_wait_s) / mean_s,
        "queue_wait": (chosen.queue_wait_s - base.queue_wait_s) / mean_s,
        "service": (chosen.service_s - base.service_s) / mean_s,
        "energy": math.log(chosen.energy_per_request_j / base.energy_per_request_j),
    }
    return Attribution(chosen.edp / base.edp, terms)


def attribute_stats(base: Mapping[str, object], chosen: Mapping[str, object]) -> Attribution | None:
    """`attribute` over two summary config dicts; None when either lacks a number it needs."""
    b, c = Side.from_stats(base), Side.from_stats(chosen)
    return None if b is None or c is None else attribute(b, c)
