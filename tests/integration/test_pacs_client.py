"""The PACS client over a connection the server drops: Orthanc closes an idle keep-alive connection
after about half a second, and a request sent on it at that moment came back "connection aborted"
(the e2e test's wait for stable studies failed so, polling every second; DICOMweb calls had
dicomweb-client's own retries, the REST calls none)."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

pytestmark = [pytest.mark.integration]


class _DropsTheSecondRequest(socketserver.BaseRequestHandler):
    """Answers the first request of each connection (keep-alive) and closes the connection, without an
    answer, when a second request arrives on it: the race a client meets on a reused connection."""

    def handle(self):
        stream, served = self.request.makefile("rb"), 0
        while True:
            line = stream.readline()
            if not line:
                return
            length = 0
            while (header := stream.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                length = int(value) if name.strip().lower() == "content-length" else length
            stream.read(length)
            if served:
                self.request.shutdown(socket.SHUT_RDWR)
                return
            body = b'[{"ID": "x", "Type": "Study"}]' if b"/tools/lookup" in line else b'{"IsStable": false}'
            self.request.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            served += 1


def test_a_request_on_a_connection_the_pacs_just_closed_is_sent_again(monkeypatch, tmp_path):
    from mura_core.settings import get_settings
    from pipelines.pacs.client import PacsClient

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _DropsTheSecondRequest)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
        for name, value in {"MURA_HOME": str(tmp_path), "MURA_PACS_URL": url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MURA_PACS_USER", "mura")
        monkeypatch.setenv("MURA_PACS_PASSWORD", "made-up")
        pacs = PacsClient(get_settings())
        # Orthanc's REST API: a lookup, then the study, on one connection: the second is dropped each time.
        assert [pacs.is_stable("1.2.3") for _ in range(3)] == [False, False, False]
    finally:
        server.shutdown()
        server.server_close()
