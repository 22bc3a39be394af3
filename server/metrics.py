"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("coedit_ws_connections", "Open WebSocket sessions", registry=r)
        self.frames_in = Counter("coedit_ws_frames_in_total", "Frames received", ["type"],
                                 registry=r)
        self.errors = Counter("coedit_errors_total", "Error replies sent", ["code"], registry=r)
        self.writes = Counter("coedit_writes_total", "Versioned writes by outcome", ["result"],
                              registry=r)
        self.write_seconds = Histogram(
            "coedit_write_seconds", "Versioned write latency, commit included", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.deltas_published = Counter("coedit_deltas_published_total", "Deltas published",
                                        registry=r)
        self.review_transitions = Counter(
            "coedit_review_transitions_total", "Reviews assigned or moved, by the state reached",
            ["to"], registry=r)
        self.step_transitions = Counter(
            "coedit_workflow_step_transitions_total",
            "Workflow steps moved, by action type and the state reached", ["action", "to"],
            registry=r)
        self.step_cycle_seconds = Histogram(
            "coedit_workflow_step_cycle_seconds",
            "Time from a workflow step becoming ready to its completion, by action type",
            ["action"], registry=r,
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400),
        )
        self.denied = Counter("coedit_access_denied_total", "Refused actions", registry=r)
        self.overflows = Counter("coedit_send_queue_overflows_total",
                                 "Connections closed because their send queue overflowed",
                                 registry=r)
        self.notifications_live = Counter(
            "coedit_notifications_live_total",
            "Notifications this node was to push live, by outcome: sent, throttled (stored "
            "only: the addressee had its share this minute), disabled (COEDIT_NOTIFICATIONS "
            "off)", ["outcome"], registry=r)
        self.rate_limited = Counter("coedit_http_rate_limited_total",
                                    "HTTP requests refused by the rate limit (429)", registry=r)
        self.rate_limit_fallbacks = Counter(
            "coedit_rate_limit_fallbacks_total",
            "Rate-limit and throttle checks counted on this node alone: Redis did not answer",
            registry=r)
        self.closes = Counter("coedit_ws_closes_total", "Sessions closed by the server",
                              ["code"], registry=r)

        # The labelled children counted on every frame and every write, found once per label
        # value: ``labels()`` takes a lock and builds its key on each call.
        self._children: dict[tuple[Counter, str], Any] = {}

    def count(self, counter: Counter, label: str) -> None:
        """``counter.labels(label).inc()`` for a counter with one label, on a hot path."""
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
