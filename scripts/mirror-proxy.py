#!/usr/bin/env python3
"""A forwarding HTTP proxy for apt inside the fresh-host namespaces (scripts/fresh-host.sh).

Listens on ADDRESS:PORT (a veth address this project created) and forwards plain-HTTP GET/HEAD
requests only to the host of MIRROR_URL; anything else gets 403. No CONNECT, no other hosts.
Usage: mirror-proxy.py ADDRESS PORT MIRROR_URL
"""
import http.server
import socketserver
import sys
import urllib.error
import urllib.parse
import urllib.request

address, port, mirror = sys.argv[1], int(sys.argv[2]), sys.argv[3]
allowed = urllib.parse.urlsplit(mirror).hostname


class Proxy(http.server.BaseHTTPRequestHandler):
    def _forward(self, head_only):
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname != allowed:
            self.send_error(403, f"only {allowed} is reachable from here")
            return
        req = urllib.request.Request(self.path, method="HEAD" if head_only else "GET")
        for h in ("Range", "If-Modified-Since", "If-None-Match"):
            if self.headers.get(h):
                req.add_header(h, self.headers[h])
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                self.send_response(r.status)
                for k, v in r.headers.items():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                if not head_only:
                    while chunk := r.read(1 << 16):
                        self.wfile.write(chunk)
        except urllib.error.HTTPError as e:
            self.send_response(e.code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_GET(self):
        self._forward(False)

    def do_HEAD(self):
        self._forward(True)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


Server((address, port), Proxy).serve_forever()
