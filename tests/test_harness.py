"""The test harness's servers on a shared machine: a port found free may be taken by
another program (another test run, a demo network) before the server started here
binds it. Each server then starts again on other ports, and is only handed to a test
once its own process holds them (before, storescp and Orthanc were taken as started as
soon as anything answered on the port: the other program)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import pacs, smtp


@contextlib.contextmanager
def first_port_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """``pacs.free_port`` answers first with a port another socket listens on, then
    free ones; yields the taken port."""
    real = pacs.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        given = iter([port])
        monkeypatch.setattr(pacs, "free_port", lambda: next(given, None) or real())
        yield port


def test_storescp_given_a_port_taken_meanwhile_listens_on_another(
    storescp: Callable[..., tuple[int, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with first_port_taken(monkeypatch) as taken:
        port, folder = storescp()
        assert port != taken
        assert folder.is_dir()
    assert pacs.listening(port)


def test_orthanc_given_a_port_taken_meanwhile_answers_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pacs.ORTHANC.exists():
        pytest.skip("Debian's orthanc (.ci/run installs it)")
    with first_port_taken(monkeypatch) as taken:
        with pacs.orthanc_running(tmp_path / "orthanc", "PACS", {}) as (http_port, dicom_port):
            assert taken not in (http_port, dicom_port)
            assert pacs.orthanc_get(http_port, "/system")["DicomAet"] == "PACS"


def test_the_smtp_sink_given_a_port_taken_meanwhile_takes_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with first_port_taken(monkeypatch) as taken:
        sink = smtp.SmtpSink()
        assert sink.port == taken
        sink.start()
    try:
        assert sink.port != taken
        with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as conn:
            assert conn.recv(1024).startswith(b"220")  # the SMTP greeting: the sink itself
    finally:
        sink.stop()


def test_a_process_listening_is_told_from_another_on_the_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert pacs.listening_by(os.getpid(), port)
        assert not pacs.listening_by(1, port)
