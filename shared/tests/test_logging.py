"""JSON log lines carry the trace they were written in."""

import json

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from bookstore_shared.logging import configure_logging
from bookstore_shared.telemetry import Telemetry


def test_a_log_line_in_a_span_carries_its_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(service="test", json=True)
    tracer = TracerProvider().get_tracer("test")
    log = structlog.get_logger("test")
    with tracer.start_as_current_span("work") as span:
        log.warning("inside")
    log.warning("outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_without_an_exporter_spans_are_not_recorded_but_their_ids_still_reach_the_logs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    configure_logging(service="test", json=True)
    tracer = Telemetry("test").tracer
    with tracer.start_as_current_span("work") as span:
        recording = span.is_recording()
        structlog.get_logger("test").warning("inside")
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert recording is False
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
