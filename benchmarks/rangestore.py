"""A read-only object store that costs next to no CPU: ranged GETs answered with sendfile(2).

    python benchmarks/rangestore.py FILE PORTFILE

Serves FILE as every object of every bucket (path-style `/<bucket>/<key>`) on 127.0.0.1, with
the headers an S3 GET answers with (ETag, Content-Range, Content-Length) and If-Match honoured;
request signatures are not checked. It lets `bench_stack.py` measure the plugin's re-hash code
on its own: an object store on the same two cores (SeaweedFS here) spends more CPU per GiB than
the hash itself, so measured against it the plugin's figure is the store's. Writes the port it
listens on to PORTFILE, then serves until killed. Benchmark use only.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)\Z")


def serve(path: Path, portfile: Path) -> None:
    size = path.stat().st_size
    st = path.stat()
    etag = (
        '"'
        + hashlib.sha256(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
        + '"'
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, Nagle's algorithm holds the
            # body back until the client's delayed ACK (40 ms per request).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("If-Match") not in (None, etag):
                self._empty(412)
                return
            start, end, status = 0, size - 1, 200
            m = _RANGE.match(self.headers.get("Range", ""))
            if m:
                start = int(m[1])
                end = min(int(m[2]) if m[2] else size - 1, size - 1)
                status = 206
                if start >= size:
                    self._empty(416)
                    return
            length = end - start + 1
            self.send_response(status)
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as f:
                offset, left = start, length
                while left:
                    sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, left)
                    if not sent:
                        break
                    offset, left = offset + sent, left - sent

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    portfile.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]))
