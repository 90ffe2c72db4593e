#!/usr/bin/env python3
"""A release server that holds its answers: the action harness's stand-in for a slow or stalled
download (action/setup.sh's time bound, and two jobs downloading into one tool cache at once).

usage: held_release.py DIRECTORY GO_FILE
Serves DIRECTORY on 127.0.0.1 (a free port, printed as "port N" on stdout). A GET of a file sends
the headers and the first half of the body at once, then the rest only once GO_FILE exists; until
then the connection stays open and silent. Each request is logged to stderr as "GET /NAME".
"""

import http.server
import os
import sys
import time

root, go_file = sys.argv[1], sys.argv[2]


class Held(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        print(f"GET {self.path}", file=sys.stderr, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        half = len(data) // 2
        self.wfile.write(data[:half])
        self.wfile.flush()
        # The test creates GO_FILE when the other job is done; a client that gave up meanwhile
        # makes the write below fail, which ends this thread.
        while not os.path.exists(go_file):
            time.sleep(0.05)
        try:
            self.wfile.write(data[half:])
        except OSError:
            pass

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
server.daemon_threads = True
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
