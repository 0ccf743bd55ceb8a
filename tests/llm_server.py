#!/usr/bin/python3
"""llm_server.py — a loopback LLM server for kb's tests.

Speaks the three protocols kb uses and replays recorded replies from tests/data/llm:
  POST .../v1/chat/completions  OpenAI Chat Completions, SSE (openai.sse); any path ending in
                                /chat/completions too, as hosted providers have them
                                (/v1beta/openai/chat/completions, /api/v1/chat/completions, ...)
  POST .../api/chat             Ollama, NDJSON (ollama.ndjson)
  POST .../v1/messages          Anthropic Messages, SSE (anthropic.sse); needs x-api-key and
                                anthropic-version headers like the real API
The first path segments choose a scenario: /s/NAME/<endpoint>. NAME is
  ok         replay the recording
  r429-ID    the first request for ID gets 429 with Retry-After: 1, later ones the recording
  r429date-ID  the same with Retry-After as an HTTP date (IMF-fixdate) 2 s ahead
  r429past-ID  the same with Retry-After as an HTTP date an hour ago
  r500-ID    the first request for ID gets 500, later ones the recording
  stall      part of the recording, then silence (the connection stays open)
  endless    an answer that never ends (well past 10 MB)
  slow       the headers at once, the first byte after 2.5 s, then the recording
  status-NNN every request gets HTTP status NNN with an error body in the backend's shape
             (message "fake status NNN"), Retry-After: 0 and, for 3xx, a Location to /s/ok
A model named "nosuch" gets the backend's own 404 reply; an API key starting "sk-wrong" gets
its 401 reply, which quotes the key back as some servers do.
Every request is appended to the log file as one JSON line: path, headers (lower-case), body.
Replies are sent with chunked transfer encoding in small, uneven pieces, so events arrive
split at odd byte offsets. Usage: llm_server.py --port-file F --log F --data DIR
  --tls CERT KEY  serve HTTPS with this certificate and key (PEM files)
  --no-accept     instead of serving: a listener whose backlog is full and that never accepts,
                  so a client's connect() neither succeeds nor fails until its own timeout
"""
import argparse
import json
import os
import random
import socket
import ssl
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
SEEN = {}

ENDPOINTS = {
    "/v1/chat/completions": ("openai", "openai.sse", "text/event-stream"),
    "/api/chat": ("ollama", "ollama.ndjson", "application/x-ndjson"),
    "/v1/messages": ("anthropic", "anthropic.sse", "text/event-stream"),
}


def error_body(proto, status, model, key):
    if status == 404:
        return {
            "openai": {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                                 "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
            "ollama": {"error": f"model \"{model}\" not found, try pulling it first"},
            "anthropic": {"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}},
        }[proto]
    if status == 401:
        msg = f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."
        if proto == "anthropic":
            return {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"}}
        return {"error": {"message": msg, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    if status == 429:
        return {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}
    return {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}


def status_body(proto, status):
    msg = f"fake status {status}"
    return {"openai": {"error": {"message": msg, "type": "fake_error", "code": status}},
            "ollama": {"error": msg},
            "anthropic": {"type": "error", "error": {"type": "fake_error", "message": msg}}}[proto]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, body):
        entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        try:
            entry["body"] = json.loads(body)
        except ValueError:
            entry["body_raw"] = body.decode("utf-8", "replace")
        with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def send_json(self, status, doc, extra=()):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def replay(self, data, upto=None):
        rng = random.Random(len(data))
        at, end = 0, len(data) if upto is None else upto
        while at < end:
            n = min(rng.randint(1, 97), end - at)
            self.chunk(data[at:at + n])
            at += n
            time.sleep(0.001)

    def endless(self, proto):
        piece = "x" * 1000
        if proto == "ollama":
            event = json.dumps({"model": "m", "message": {"role": "assistant", "content": piece}, "done": False}) + "\n"
        elif proto == "anthropic":
            event = "event: content_block_delta\ndata: " + json.dumps(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}) + "\n\n"
        else:
            event = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}) + "\n\n"
        block = event.encode() * 64
        for _ in range(100000):  # ~8 GB at most; kb must hang up long before
            self.chunk(block)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.record(body)
        parts = self.path.split("/", 3)  # "", "s", NAME, rest
        if len(parts) < 4 or parts[1] != "s":
            return self.send_json(404, {"error": "no such path"})
        scenario, endpoint = parts[2], "/" + parts[3]
        if endpoint.endswith("/chat/completions"):
            endpoint = "/v1/chat/completions"  # hosted providers' shapes: /v1beta/openai/..., /api/v1/...
        if endpoint not in ENDPOINTS:
            return self.send_json(404, {"error": f"no endpoint {endpoint}"})
        proto, recording, ctype = ENDPOINTS[endpoint]
        try:
            model = json.loads(body).get("model", "")
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON"}})
        auth = self.headers.get("Authorization", "")
        key = self.headers.get("x-api-key", "") if proto == "anthropic" else auth[7:] if auth.startswith("Bearer ") else ""
        if proto == "anthropic" and (not key or not self.headers.get("anthropic-version")):
            return self.send_json(401, {"type": "error", "error": {"type": "authentication_error",
                                                                   "message": "x-api-key header is required"}})
        if key.startswith("sk-wrong"):
            return self.send_json(401, error_body(proto, 401, model, key))
        if model == "nosuch":
            return self.send_json(404, error_body(proto, 404, model, key))
        if scenario.startswith("status-"):
            status = int(scenario[len("status-"):])
            extra = [("Retry-After", "0")]
            if 300 <= status <= 399:
                extra.append(("Location", f"http://{self.headers.get('Host', '')}/s/ok{endpoint}"))
            return self.send_json(status, status_body(proto, status), extra)
        if scenario.startswith(("r429-", "r429date-", "r429past-", "r500-")):
            with LOCK:
                first = scenario not in SEEN
                SEEN[scenario] = True
            if first:
                status = int(scenario[1:4])
                kind = scenario.split("-", 1)[0]
                after = {"r429": "1", "r429date": formatdate(time.time() + 2, usegmt=True),
                         "r429past": formatdate(time.time() - 3600, usegmt=True)}.get(kind)
                extra = [("Retry-After", after)] if after else []
                return self.send_json(status, error_body(proto, status, model, key), extra)
        with open(os.path.join(ARGS.data, recording), "rb") as f:
            data = f.read()
        self.start_stream(ctype)
        try:
            if scenario == "stall":
                self.replay(data, len(data) // 3)
                time.sleep(30)
            elif scenario == "endless":
                self.endless(proto)
            else:
                if scenario == "slow":
                    time.sleep(2.5)
                self.replay(data)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def write_port(port):
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)


def never_accept():
    """Listens with a backlog of 0 and fills it with connections of its own: Linux then drops
    further SYNs, so a new connect() hangs until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.2)
    write_port(port)
    while True:
        time.sleep(60)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--no-accept", action="store_true")
    ARGS = p.parse_args()
    if ARGS.no_accept:
        return never_accept()
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if ARGS.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*ARGS.tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    write_port(server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
