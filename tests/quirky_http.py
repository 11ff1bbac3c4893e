"""An HTTP server on 127.0.0.1 that misbehaves on request, for the remote-storage tests.

Run as ``python quirky_http.py FOLDER``: serves FOLDER's files (HEAD and GET, with
``Range``), prints ``port N`` and reads ``FOLDER/.quirks.json`` on every request:

- ``"fail": n``: the next ``n`` requests answer 500;
- ``"fail_range": n``: the next ``n`` requests with a ``Range`` (reads of data) answer 500;
- ``"ignore_range": true``: a ``Range`` request gets 200 and the whole object;
- ``"hang_get": true``: GET requests are accepted and never answered (HEAD is);
- ``"no_version": true``: no ``Last-Modified`` header (the server sends no ETag ever);
- ``"no_length": true``: HEAD sends no ``Content-Length`` and GET streams without one.

It exits when its standard input closes (its parent died or closed the pipe).
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FOLDER = sys.argv[1] if __name__ == "__main__" else "."
LOCK = threading.Lock()


def quirks(ranged: bool) -> dict:
    """The quirks for this request; a failure counted down is answered once."""
    path = os.path.join(FOLDER, ".quirks.json")
    with LOCK:
        try:
            with open(path) as f:
                found = json.load(f)
        except (OSError, ValueError):
            return {}
        for counter in ("fail", "fail_range") if ranged else ("fail",):
            if found.get(counter):
                with open(path, "w") as f:
                    json.dump({**found, counter: found[counter] - 1}, f)
                return {**found, "fail": 1}
        return {**found, "fail": 0}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        q = quirks(ranged="Range" in self.headers)
        if q.get("fail"):
            self.send_error(500, "injected failure")
            return
        if body and q.get("hang_get"):
            time.sleep(3600)
            return
        path = os.path.join(FOLDER, self.path.lstrip("/").split("?")[0])
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        status, start, end = 200, 0, len(data)
        wanted = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if wanted and not q.get("ignore_range"):
            status, start = 206, int(wanted.group(1))
            end = min(len(data), int(wanted.group(2)) + 1) if wanted.group(2) else len(data)
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if not q.get("no_length"):
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
        if not q.get("no_version"):
            modified = email.utils.formatdate(os.stat(path).st_mtime, usegmt=True)
            self.send_header("Last-Modified", modified)
        if q.get("no_length"):
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(data[start:end])


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes the pipe or dies
    server.shutdown()


if __name__ == "__main__":
    main()
