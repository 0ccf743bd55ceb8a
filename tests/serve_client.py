#!/usr/bin/python3
"""serve_client.py — drives a running `kb serve` over real sockets for tests/serve_test.sh.

Usage: serve_client.py CASE. The server and its settings come from the environment:
  SERVE_PORT, SERVE_READ, SERVE_ADMIN (tokens), KB (the kb binary), KB_DIR, MODEL (its model
  folder), ANSWER (the answer file the loopback LLM replays), MAX_BODY, MAX_CONNECTIONS.
Prints one line per failed check and exits 1 when any failed.
"""
import base64
import http.client
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

PORT = int(os.environ["SERVE_PORT"])
READ, ADMIN = os.environ["SERVE_READ"], os.environ["SERVE_ADMIN"]
HOST = f"127.0.0.1:{PORT}"
FAILS = []
PASSES = [0]


def check(cond, what):
    if cond:
        PASSES[0] += 1
    else:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def request(method, path, body=None, token=None, host=None, headers=None, raw=False):
    """One request on a fresh connection: (status, headers dict lower-case, parsed JSON or bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    h = {"Host": HOST if host is None else host}
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in h.items():
        c.putheader(k, v)
    if body is not None and "Transfer-Encoding" not in h:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    if raw or not hdrs.get("content-type", "").startswith("application/json"):
        return r.status, hdrs, data
    return r.status, hdrs, json.loads(data)


def is_error(doc, code):
    return (isinstance(doc, dict) and set(doc) == {"error"} and doc["error"].get("code") == code
            and isinstance(doc["error"].get("message"), str) and doc["error"]["message"])


ROUTES = [  # method, path, body, scope
    ("POST", "/v1/search", {"query": "logs rotated", "k": 3}, "read"),
    ("POST", "/v1/ask", {"question": "how are the logs rotated"}, "read"),
    ("POST", "/v1/prompt", {"question": "how are the logs rotated"}, "read"),
    ("POST", "/v1/embeddings", {"input": "rotate the logs"}, "read"),
    ("GET", "/v1/status", None, "read"),
    ("GET", "/v1/models", None, "read"),
    ("POST", "/v1/documents", {"documents": [{"id": "mem/a", "text": "zebra crossing notes"}]},
     "admin"),
    ("DELETE", "/v1/documents/mem/a", None, "admin"),
]


def case_auth():
    for method, path, body, scope in ROUTES:
        name = f"{method} {path}"
        s, h, d = request(method, path, body)
        check(s == 401 and is_error(d, "unauthorized") and h.get("www-authenticate") == "Bearer",
              f"{name} without a token is 401 unauthorized (got {s})")
        s, _, d = request(method, path, body, token="0" * 64)
        check(s == 401 and is_error(d, "unauthorized"), f"{name} with a wrong token is 401 (got {s})")
        s, _, d = request(method, path, body, token=READ[:-1])
        check(s == 401, f"{name} with a token one character short is 401 (got {s})")
        s, _, d = request(method, path, body, token=READ, host="evil.example:%d" % PORT)
        check(s == 421 and is_error(d, "host_not_allowed"), f"{name} with a foreign Host is 421 (got {s})")
        if scope == "admin":
            s, _, d = request(method, path, body, token=READ)
            check(s == 403 and is_error(d, "forbidden"), f"{name} with the read token is 403 (got {s})")
        s, _, d = request(method, path, body, token=ADMIN if scope == "admin" else READ)
        check(s == 200, f"{name} with its token is 200 (got {s}: {d})")
        if scope == "read":
            s, _, d = request(method, path, body, token=ADMIN)
            check(s == 200, f"{name} with the admin token is 200 too (got {s})")
    s, _, d = request("GET", "/healthz")
    check(s == 200 and d == {"status": "ok"}, "/healthz needs no token")
    for host in (f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"):
        check(request("GET", "/healthz", host=host)[0] == 200, f"Host {host} is allowed")
    for host in ("localhost", f"localhost:{PORT + 1}", "attacker.example", f"127.0.0.1.nip.io:{PORT}", ""):
        s, _, d = request("GET", "/healthz", host=host)
        check(s == 421 and is_error(d, "host_not_allowed"), f"Host '{host}' is refused with 421 (got {s})")
    s, _, d = request("GET", "/v1/nothing", token=READ)
    check(s == 404 and is_error(d, "not_found"), f"an unknown route is 404 (got {s})")
    s, _, d = request("GET", "/v1/nothing")
    check(s == 401, f"an unknown route without a token is 401, so routes cannot be probed (got {s})")
    s, h, d = request("GET", "/v1/search", token=READ)
    check(s == 405 and is_error(d, "method_not_allowed") and h.get("allow") == "POST",
          f"GET /v1/search is 405 with Allow: POST (got {s} {h.get('allow')})")
    s, h, d = request("PUT", "/v1/documents", body=b"{}", token=ADMIN)
    check(s == 405, f"PUT /v1/documents is 405 (got {s})")
    s, h, _ = request("POST", "/v1/search", {"query": "logs"}, token=READ,
                      headers={"Origin": "https://evil.example"})
    check(s == 200 and not any(k.startswith("access-control") for k in h),
          "no CORS headers are sent unless --cors is given")
    s, h, page = request("GET", "/")
    check(s == 200 and h["content-type"].startswith("text/html") and b"/v1/ask" in page
          and "content-security-policy" in h, "the page at / is served without a token, with a CSP")
    s, _, d = request("DELETE", "/v1/documents/no/such/doc", token=ADMIN)
    check(s == 404 and is_error(d, "not_found"), f"deleting an unknown document is 404 (got {s})")
    meta = {"url": "https://help.example/42", "tags": ["printer"]}
    s, _, d = request("POST", "/v1/documents", {"documents": [{"id": "mem/meta", "title": "Printer jam",
                      "text": "The quokka printer jams on recycled paper.", "metadata": meta}]}, token=ADMIN)
    check(s == 200 and d.get("added") == 1, f"a document with metadata is added (got {s} {d})")
    s, _, d = request("POST", "/v1/search", {"query": "quokka printer", "mode": "bm25"}, token=READ)
    hit = next((r for r in (d or {}).get("results", []) if r.get("path") == "mem/meta"), None)
    check(s == 200 and hit is not None and hit.get("metadata") == meta,
          f"search returns the document's metadata as given (got {hit and hit.get('metadata')})")
    s, _, d = request("POST", "/v1/documents", {"documents": [{"id": "mem/x", "text": "t", "metadata": [1]}]},
                      token=ADMIN)
    check(s == 400 and is_error(d, "invalid_request"), f"metadata that is not an object is 400 (got {s})")
    request("DELETE", "/v1/documents/mem/meta", token=ADMIN)


def raw_exchange(data, read_first=False):
    """Sends raw bytes on a socket and returns the status code of the reply (or an exception name)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.1 ") else buf[:40]
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()


def case_limits():
    max_body = int(os.environ["MAX_BODY"])
    tok = {"Authorization": "Bearer " + READ}
    big = json.dumps({"query": "x" * (max_body + 10)}).encode()
    s, _, d = request("POST", "/v1/search", big, token=READ)
    check(s == 413 and is_error(d, "payload_too_large"), f"a body just over --max-body is 413 (got {s})")
    # announced far over the limit: refused from the headers alone, before any body is sent
    head = (f"POST /v1/search HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {READ}\r\n"
            f"Content-Length: {max_body * 100}\r\n\r\n").encode()
    check(raw_exchange(head) == 413, "a body announced far over the limit is 413 before it is sent")
    chunked = (f"POST /v1/search HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {READ}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"x" * 4096
    chunked += (b"%x\r\n" % len(piece) + piece + b"\r\n") * (max_body // 4096 + 2) + b"0\r\n\r\n"
    check(raw_exchange(chunked) == 413, "a chunked body over the limit is 413")
    for body, code, what in [
        (b'{"query": "logs"', "invalid_json", "truncated JSON"),
        (b'not json at all', "invalid_json", "text that is not JSON"),
        (b'["query"]', "invalid_json", "a JSON array instead of an object"),
        (b'', "invalid_json", "an empty body"),
        (b'{"query": "a", "x": ' + b'[' * 40 + b']' * 40 + b'}', "too_deep", "JSON nested 41 deep"),
        (b'{"query": "a", "x": ' + b'[' * 50000, "too_deep", "50000 open brackets"),
        (b'{"query": "logs", "k": 101}', "limit_exceeded", "k over the limit"),
        (b'{"query": "logs", "k": 0}', "limit_exceeded", "k of 0"),
        (b'{"query": "logs", "k": 2.5}', "invalid_request", "a fractional k"),
        (b'{"query": 7}', "invalid_request", "a query that is a number"),
        (b'{"k": 3}', "invalid_request", "a missing query"),
        (b'{"query": "logs", "mode": "fuzzy"}', "invalid_request", "an unknown mode"),
        (b'{"query": "\xff\xfe"}', "invalid_request", "a query that is not UTF-8"),
        (b'{"query": "\\ud800"}', "invalid_json", "a lone surrogate escape"),
    ]:
        s, _, d = request("POST", "/v1/search", body, token=READ)
        check(s == 400 and is_error(d, code), f"{what} is 400 {code} (got {s} {d})")
    sweep_fields()
    sweep_server_errors()
    # connections: past --max-connections the one waiting longest for a request is closed to
    # make room, so idle ones cannot lock others out; only busy ones make a request a 429
    n = int(os.environ["MAX_CONNECTIONS"])
    idle = [socket.create_connection(("127.0.0.1", PORT), timeout=5) for _ in range(n + 1)]
    time.sleep(0.3)
    check(request("GET", "/v1/status", token=READ)[0] == 200,
          "idle connections past --max-connections do not lock a request out")
    try:
        closed = idle[0].recv(1) == b""
    except OSError:
        closed = True
    check(closed, "the connection idle longest was closed to make room")
    for c in idle:
        c.close()
    time.sleep(0.3)
    head = (f"POST /v1/search HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {READ}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    busy = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(n)]
    for c in busy:
        c.sendall(head)  # accepted, then waiting for the body: busy with a request
    time.sleep(0.3)
    try:
        s, _, d = request("GET", "/v1/status", token=READ)
        check(s == 429 and is_error(d, "too_many_connections"),
              f"a request past --max-connections busy connections is 429 (got {s})")
    except OSError as e:
        check(False, f"a request past --max-connections gets a reply, not {e!r}")
    for c in busy:
        c.close()
    time.sleep(0.3)
    check(request("GET", "/v1/status", token=READ)[0] == 200, "requests succeed again once connections close")
    # an idle connection is closed after --timeout
    c = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    c.sendall(b"POST /v1/search HTTP/1.1\r\n")
    t0 = time.time()
    try:
        got = c.recv(100)
    except OSError:
        got = b""
    check(got == b"" and time.time() - t0 < 8, "a connection idle past --timeout is closed")
    c.close()
    check(request("GET", "/healthz")[0] == 200, "the server is healthy after every limit was hit")


# ---- the sweep: every route x every JSON field x (missing, wrong type, too large, out of
# range, duplicate). A field is (name, kind, required, limit): kind str (limit: most bytes,
# None = only the body limit), int (limit: (min, max)), bool, enum (limit: the values),
# template, history, input, metadata, documents.
def _history(n):
    return [{"role": "user", "content": "hi"}] * n


ASK_FIELDS = [("question", "str", True, 16384), ("k", "int", False, (1, 100)),
              ("mode", "enum", False, ("bm25", "vector", "hybrid")),
              ("template", "template", False, 64), ("max_tokens", "int", False, (1, 100000)),
              ("context_window", "int", False, (2, 10000000)), ("history", "history", False, 64)]
SWEEP = [  # route, a valid body, the container of the fields ("" = the body itself), fields
    ("/v1/search", {"query": "logs rotated"}, "",
     [("query", "str", True, 16384), ("k", "int", False, (1, 100)),
      ("mode", "enum", False, ("bm25", "vector", "hybrid")), ("documents", "bool", False, None),
      ("path", "str", False, 4096), ("format", "str", False, 256),
      ("modified_after", "time", False, None)]),
    ("/v1/prompt", {"question": "how are the logs rotated"}, "", ASK_FIELDS),
    ("/v1/ask", {"question": "how are the logs rotated"}, "",
     ASK_FIELDS + [("stream", "bool", False, None)]),
    ("/v1/embeddings", {"input": "rotate the logs"}, "",
     [("input", "input", True, 2048), ("model", "str", False, 256),
      ("input_type", "enum", False, ("query", "passage")),
      ("encoding_format", "enum", False, ("float", "base64")),
      ("dimensions", "int", False, (1, 65536))]),
    ("/v1/documents", {"documents": [{"id": "sweep/a", "text": "zebra crossing"}]}, "",
     [("documents", "documents", True, 1000)]),
    ("/v1/documents", {"documents": [{"id": "sweep/a", "text": "zebra crossing"}]}, "documents",
     [("id", "str", True, 4096), ("text", "str", True, None), ("title", "str", False, 4096),
      ("format", "enum", False, ("text", "markdown")), ("metadata", "metadata", False, 65536)]),
]
WRONG_TYPE = {"str": 7, "int": "3", "bool": "yes", "enum": 1, "template": ["default"],
              "history": {"role": "user"}, "input": {"text": "x"}, "metadata": [1],
              "documents": {"id": "a"}, "time": "yesterday"}


def sweep_variants(kind, required, limit):
    """(what, value or MISSING) for one field; the value is put into a copy of the body."""
    out = []
    if required:
        out.append(("missing", MISSING))
    out.append(("wrong type", WRONG_TYPE[kind]))
    if required:  # null is taken as absent
        out.append(("null", None))
    if kind == "str" and limit:
        out.append(("too large", "x" * (limit + 1)))
    if kind == "str" and required:
        out.append(("empty", ""))
    if kind == "int":
        lo, hi = limit
        out += [("out of range", lo - 1), ("out of range", hi + 1), ("out of range", 1e300),
                ("out of range", -1e300), ("wrong type", 2.5)]
    if kind == "time":
        out += [("out of range", 1e300), ("out of range", -1e300)]
    if kind == "enum":
        out.append(("out of range", "nope"))
    if kind == "template":
        out += [("too large", "t" * 5000), ("out of range", "../../etc/passwd"),
                ("out of range", "a.b"), ("out of range", "")]
    if kind == "history":
        out += [("too large", _history(limit + 1)), ("missing content", [{"role": "user"}]),
                ("out of range", [{"role": "system", "content": "x"}]), ("wrong type", [5])]
    if kind == "input":
        out += [("too large", ["a"] * (limit + 1)), ("wrong type", [True]), ("empty", []),
                ("wrong type", ["a", 1]), ("wrong type", [1.5]), ("out of range", [-1]),
                ("wrong type", [[1], "a"])]
    if kind == "metadata":
        out.append(("too large", {"blob": "x" * limit}))
    if kind == "documents":
        out += [("too large", [{"id": f"many/{i}", "text": "t"} for i in range(limit + 1)]),
                ("empty", []), ("wrong type", ["a"]),
                ("duplicate", [{"id": "twice", "text": "one"}, {"id": "twice", "text": "two"}])]
    return out


MISSING = object()


def private_strings():
    """What no error may contain: the server's folders (the test's temporary folder holds its
    KB, HOME and XDG folders), the model's folder and the tokens."""
    home = os.environ["HOME"]
    found = {os.path.dirname(home), home, os.environ["KB_DIR"], os.environ["MODEL"], READ, ADMIN,
             os.path.realpath(os.environ["MODEL"]), os.path.realpath(os.environ["KB_DIR"])}
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HF_HOME"):
        if os.environ.get(var):
            found.add(os.environ[var])
    return sorted(found)


def check_error_body(raw, what):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw)
    leaks = [p for p in private_strings() if p in text or json.dumps(p)[1:-1] in text]
    check(not leaks, f"{what}: the error names no path of the server nor a token (found {leaks})")


def sweep_one(path, body, what, field):
    name = f"POST {path} {field} {what}"
    tok = ADMIN if path.startswith("/v1/documents") else READ
    s, _, d = request("POST", path, body, token=tok, raw=True)
    try:
        doc = json.loads(d)
    except ValueError:
        doc = None
    check(s == 400, f"{name} is 400, never a 5xx (got {s} {d[:200]!r})")
    msg = doc["error"]["message"] if isinstance(doc, dict) and "error" in doc else ""
    check(field in msg, f"{name}: the message names '{field}' (got {msg!r})")
    check_error_body(d, name)


def valid_value(kind, limit):
    return {"str": "x", "int": limit[0] + 1 if kind == "int" else None, "bool": True,
            "enum": limit[0] if kind == "enum" else None, "template": "default",
            "history": _history(1), "input": "a", "metadata": {}, "time": 0}.get(kind)


def repeated_key(base, inner, field, kind, limit):
    """The body as JSON text with `field` given twice (valid both times) in its object."""
    obj = base[inner][0] if inner else base
    value = obj.get(field, valid_value(kind, limit))
    pair = f'"{field}": {json.dumps(value)}, '
    rest = {k: v for k, v in obj.items() if k != field}
    text = "{" + pair + pair + json.dumps(rest)[1:]
    text = text.replace(", }", "}")
    return (f'{{"{inner}": [{text}]}}' if inner else text).encode()


def sweep_fields():
    for path, base, inner, fields in SWEEP:
        for field, kind, required, limit in fields:
            for what, value in sweep_variants(kind, required, limit):
                body = json.loads(json.dumps(base))
                target = body[inner][0] if inner else body
                if value is MISSING:
                    target.pop(field, None)
                else:
                    target[field] = value
                sweep_one(path, json.dumps(body).encode(), what,
                          "content" if what == "missing content" else field)
            # the same key twice in one object: which one counts would be a guess
            sweep_one(path, repeated_key(base, inner, field, kind, limit), "duplicate", field)
    # duplicate ids are one 400 that names the id, and nothing of the request is stored
    s, _, d = request("POST", "/v1/documents", {"documents": [
        {"id": "dup/x", "text": "quetzal one"}, {"id": "dup/x", "text": "quetzal two"}]}, token=ADMIN)
    check(s == 400 and is_error(d, "invalid_request") and "dup/x" in d["error"]["message"],
          f"two documents with one id are 400 naming the id (got {s} {d})")
    s, _, d = request("DELETE", "/v1/documents/dup/x", token=ADMIN)
    check(s == 404, f"neither document with the repeated id was stored (DELETE got {s})")
    # DELETE's id is a field too: too long, empty
    s, _, d = request("DELETE", "/v1/documents/" + "x" * 4097, token=ADMIN, raw=True)
    check(s == 400 and b"id" in d, f"DELETE with an id over 4096 bytes is 400 (got {s})")
    check_error_body(d, "DELETE with a long id")
    s, _, d = request("GET", "/v1/status", token=READ)
    check(s == 200, f"status answers after the sweep (got {s})")


def sweep_server_errors():
    """What the server's own files break answers 5xx with a fixed message: never its paths."""
    prompts = os.path.join(os.environ["XDG_CONFIG_HOME"], "kb", "prompts")
    os.makedirs(prompts, exist_ok=True)
    with open(os.path.join(prompts, "broken.prompt"), "w", encoding="utf-8") as f:
        f.write("[system]\\n{{nonsense}}\\n")
    for path in ("/v1/prompt", "/v1/ask"):
        s, _, d = request("POST", path, {"question": "logs", "template": "broken"}, token=READ, raw=True)
        doc = json.loads(d)
        check(s == 500 and is_error(doc, "config_error"),
              f"POST {path} with a template file that does not parse is 500 config_error (got {s} {d!r})")
        check_error_body(d, f"POST {path} with a broken template file")
    s, _, d = request("POST", "/v1/prompt", {"question": "logs", "template": "nosuch"}, token=READ, raw=True)
    check(s == 404 and is_error(json.loads(d), "not_found"), f"an unknown template is 404 (got {s})")
    check_error_body(d, "an unknown template")
    s, _, d = request("POST", "/v1/prompt", {"question": "logs", "context_window": 2}, token=READ)
    check(s == 400 and is_error(d, "limit_exceeded") and "context_window" in d["error"]["message"],
          f"a context_window that leaves no room for the answer is 400 naming it (got {s} {d})")


def sse_events(resp):
    """Yields the JSON of each `data:` event as it arrives."""
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            return
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])


def open_stream(question):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    c.request("POST", "/v1/ask", body=json.dumps({"question": question, "stream": True}),
              headers={"Authorization": "Bearer " + READ, "Content-Type": "application/json"})
    return c, c.getresponse()


def case_sse():
    answer = open(os.environ["ANSWER"], encoding="utf-8").read()
    c, r = open_stream("how are the logs rotated")
    check(r.status == 200 and r.getheader("Content-Type") == "text/event-stream",
          f"a streamed answer is 200 text/event-stream (got {r.status})")
    events = list(sse_events(r))
    c.close()
    types = [e["type"] for e in events]
    n = types.count("token")
    check(n > 1 and types == ["token"] * n + ["sources", "summary"],
          f"events are tokens, then sources, then a summary (got {types[:3]}...{types[-2:]})")
    text = "".join(e["text"] for e in events if e["type"] == "token")
    check(text == answer, "the token events add up to the answer byte for byte")
    src = events[-2]["sources"] if len(events) > 1 else []
    check(src and src[0]["number"] == 1 and src[0]["path"].endswith("logs.md"),
          "the sources event lists the numbered passages")
    s = events[-1]
    check(s.get("answer") == answer and s["usage"]["completion_tokens"] > 0 and "error" not in s,
          "the summary carries the whole answer and usage")
    st, _, d = request("POST", "/v1/ask", {"question": "how are the logs rotated"}, token=READ)
    check(st == 200 and d["answer"] == answer and d["sources"][0]["number"] == 1,
          "without stream, /v1/ask answers with one JSON document")
    st, _, d = request("POST", "/v1/prompt", {"question": "how are the logs rotated", "k": 2}, token=READ)
    check(st == 200 and d["messages"][0]["role"] == "system"
          and "how are the logs rotated" in d["messages"][-1]["content"] and len(d["sources"]) <= 2,
          "/v1/prompt returns the messages kb ask would send")
    # a client that goes away mid-stream: the server carries on serving
    for _ in range(3):
        c, r = open_stream("how are the logs rotated")
        first = next(sse_events(r))
        check(first["type"] == "token", "a stream starts with a token event")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    time.sleep(0.5)
    c, r = open_stream("how are the logs rotated")
    text = "".join(e.get("text", "") for e in sse_events(r) if e["type"] == "token")
    c.close()
    check(text == answer, "after clients hung up mid-stream, the next stream is whole")
    check(request("GET", "/v1/status", token=READ)[0] == 200, "status answers after abandoned streams")


def case_dropped():
    """Requests waiting for a handle whose clients hang up give their connections back at once."""
    n = int(os.environ["MAX_CONNECTIONS"])
    c, r = open_stream("how are the logs rotated")  # holds the only handle: the LLM stalls
    check(r.status == 200 and next(sse_events(r))["type"] == "token",
          "a streamed answer holds the only handle")
    body = json.dumps({"query": "logs rotated", "k": 3}).encode()
    head = (f"POST /v1/search HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {READ}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    waiting = []
    for _ in range(n - 1):  # one at a time, so each is let in: the stream and these make n
        w = socket.create_connection(("127.0.0.1", PORT))
        w.sendall(head + body)
        waiting.append(w)
        time.sleep(0.3)
    st = request("GET", "/healthz")[0]
    check(st == 429, f"with {n - 1} searches waiting for the handle, one more connection is 429 "
          f"(got {st})")
    for w in waiting:
        w.close()
    t0, st = time.time(), 0
    while time.time() - t0 < 10:
        st = request("GET", "/healthz")[0]
        if st == 200:
            break
        time.sleep(0.05)
    took = time.time() - t0
    check(st == 200 and took < 2,
          f"once their clients hang up, the waiting searches let go of their connections "
          f"within 2 s (got {st} after {took:.1f} s; --timeout is 30 s)")
    c.close()


def case_concurrent():
    errors, searches = [], [0]
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            try:
                s, _, d = request("POST", "/v1/search", {"query": "logs rotated nightly", "k": 5}, token=READ)
                if s != 200 or not isinstance(d.get("results"), list):
                    errors.append(f"search {s} {d}")
                searches[0] += 1
            except Exception as e:  # noqa: BLE001 — every failure counts
                errors.append(repr(e))

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    cli = subprocess.Popen([os.environ["KB"], "--kb", os.environ["KB_DIR"], "-q", "ingest",
                            "--wait=60", os.environ["EXTRA_DOCS"]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    n_docs = 24
    for i in range(n_docs):
        docs = [{"id": f"api/doc{i}", "title": f"Note {i}", "format": "markdown",
                 "text": f"# Note {i}\n\nquokka{i} lives in paragraph {i} of the api notes.\n"}]
        s, _, d = request("POST", "/v1/documents", {"documents": docs}, token=ADMIN)
        if s != 200 or d.get("added") != 1:
            errors.append(f"ingest {i}: {s} {d}")
    for i in range(0, n_docs, 4):
        s, _, d = request("DELETE", f"/v1/documents/api/doc{i}", token=ADMIN)
        if s != 200 or d.get("deleted") != 1:
            errors.append(f"delete {i}: {s} {d}")
    cli_err = cli.communicate(timeout=120)[1]
    stop.set()
    for t in threads:
        t.join()
    check(cli.returncode == 0, f"kb ingest runs beside the service's writes (exit {cli.returncode}: {cli_err[-300:]!r})")
    check(not errors, f"no errors while 4 clients searched during API ingest ({len(errors)}: {errors[:3]})")
    check(searches[0] >= 20, f"the searchers made progress ({searches[0]} searches)")
    s, _, d = request("POST", "/v1/search", {"query": "quokka5", "k": 3}, token=READ)
    check(s == 200 and d["results"] and d["results"][0]["path"] == "api/doc5",
          "a document added through the API is found by search")
    s, _, d = request("POST", "/v1/search", {"query": "quokka4", "k": 3}, token=READ)
    check(s == 200 and not any(r["path"] == "api/doc4" for r in d["results"]),
          "a document deleted through the API is gone from search")
    s, _, d = request("POST", "/v1/search", {"query": "wombat", "k": 3}, token=READ)
    check(s == 200 and d["results"], "files kb ingest added meanwhile are found through the API")


def case_embeddings():
    texts = ["how are the logs rotated", "a second, different text"]
    out = subprocess.run([os.environ["KB"], "--json", "embed", "--model", os.environ["MODEL"]] + texts,
                         capture_output=True, check=True).stdout
    want = json.loads(out)["embeddings"]
    s, _, d = request("POST", "/v1/embeddings", {"input": texts}, token=READ)
    check(s == 200 and d["object"] == "list" and [e["index"] for e in d["data"]] == [0, 1]
          and all(e["object"] == "embedding" for e in d["data"]), f"the response has OpenAI's shape ({s})")
    got = [e["embedding"] for e in d["data"]] if s == 200 else []
    check(len(got) == 2 and all(len(g) == len(w) for g, w in zip(got, want)),
          "one vector of the model's dimension per input")
    diff = max((abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w)), default=1)
    check(diff <= 1e-6, f"the vectors equal kb embed --json (max difference {diff})")
    check(d.get("usage", {}).get("prompt_tokens", 0) > 0 and d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"],
          "usage counts the model tokens")
    s, _, one = request("POST", "/v1/embeddings", {"input": texts[0], "model": d.get("model")}, token=READ)
    check(s == 200 and one["data"][0]["embedding"] == got[0], "a single string input gives the same vector")
    s, _, e = request("POST", "/v1/embeddings", {"input": "x", "model": "text-embedding-3-small"}, token=READ)
    check(s == 404 and is_error(e, "model_not_found"), f"another model name is 404 model_not_found (got {s})")
    s, _, e = request("POST", "/v1/embeddings", {"input": [1.5, 2]}, token=READ)
    check(s == 400 and is_error(e, "invalid_request"), f"a token id that is no integer is 400 (got {s})")
    # concurrent callers share the one model
    results = []

    def worker():
        results.append(request("POST", "/v1/embeddings", {"input": texts}, token=READ)[2])

    ts = [threading.Thread(target=worker) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(all(r["data"][1]["embedding"] == got[1] for r in results),
          "six concurrent callers get the same vectors")


def case_page():
    """Loads the page in headless Chromium, waits in real time until it says its answer is
    done, and saves the DOM and a screenshot (env PAGE_URL, DOM_OUT, PNG_OUT, PROFILE).
    Chromium's --dump-dom/--screenshot run on virtual time, which does not wait for a streamed
    response body, so Chromium is driven through the DevTools protocol over
    --remote-debugging-pipe (JSON messages separated by NUL bytes on fds 3 and 4)."""
    url, dom_out, png_out, profile = (os.environ[k] for k in ("PAGE_URL", "DOM_OUT", "PNG_OUT", "PROFILE"))
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # Chromium reads commands on fd 3 and writes replies on fd 4.
    proc = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--user-data-dir=" + profile, "--window-size=1000,800", "--hide-scrollbars",
         "--remote-debugging-pipe", "about:blank"],
        pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    state = {"buf": b"", "id": 0}


    def call(method, params=None, session=None):
        state["id"] += 1
        msg = {"id": state["id"], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" in state["buf"]:
                raw, state["buf"] = state["buf"].split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == state["id"]:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            chunk = os.read(from_chrome_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            state["buf"] += chunk


    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call("Emulation.setDeviceMetricsOverride",
             {"width": 1000, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session)
        call("Page.navigate", {"url": url}, session)
        page_state, deadline = None, time.time() + 60
        while time.time() < deadline:
            res = call("Runtime.evaluate", {"expression": "document.body && document.body.dataset.state",
                                            "returnByValue": True}, session)
            page_state = res["result"].get("value")
            if page_state == "done":
                break
            time.sleep(0.2)
        dom = call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                        "returnByValue": True}, session)["result"]["value"]
        with open(dom_out, "w", encoding="utf-8") as f:
            f.write(dom)
        shot = call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(png_out, "wb") as f:
            f.write(base64.b64decode(shot))
        check(page_state == "done", f"the page finished its answer (state {page_state})")
    finally:
        try:
            call("Browser.close")
        except Exception:  # noqa: BLE001 — it may already be gone
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def case_filters():
    """modified_after is checked at the edge: kb stores nanoseconds in int64, so seconds past
    9223372036 (2262-04-11) cannot be compared; a value out of range or of int64_t's range
    (undefined to convert) is a 400 naming the range, and the server stays up."""
    def search(after):
        return request("POST", "/v1/search", {"query": "logs rotated", "k": 3,
                                               "modified_after": after}, READ)
    for bad in [1e10, 9223372037, 1e300, -1, -1e300, "1e10", True, None]:
        s, _, d = search(bad)
        check(s == 400 and is_error(d, "invalid_request") and "modified_after" in
              d["error"]["message"] and "9223372036" in d["error"]["message"],
              f"modified_after {bad!r}: 400 naming the range (got {s} {d})")
    s, _, d = search(9223372036)
    check(s == 200 and d["results"] == [], f"the last second in range matches nothing ({s} {d})")
    s, _, d = search(86400)
    check(s == 200 and len(d["results"]) == 3, f"an early time filters nothing ({s})")
    s, _, _ = request("GET", "/healthz")
    check(s == 200, "the server answers after every out-of-range time")


def raw_reply(data):
    """Sends raw bytes on a fresh socket: (status or None, the reply's body)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
    buf = b""
    try:
        s.sendall(data)
        while True:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            m = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if sep and m and len(rest) >= int(m[0].split(b":")[1]):
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    finally:
        s.close()
    status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.1 ") else None
    return status, buf.partition(b"\r\n\r\n")[2]


def post_raw(path, body, token, host=None):
    head = (f"POST {path} HTTP/1.1\r\nHost: {host or HOST}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return raw_reply(head + body)


def case_strict():
    """Issue 18 item 9: what a lenient parser would guess at is refused with 400."""
    # one Host, NAME[:PORT] with the port in plain digits
    for hosts, what in [((HOST, HOST), "the same Host twice"),
                        ((HOST, "evil.example"), "a second, foreign Host"),
                        ((f"127.0.0.1: {PORT}",), "a port after a space"),
                        ((f"127.0.0.1:+{PORT}",), "a port with a sign"),
                        ((f"127.0.0.1:0{PORT}",), "a port with a leading zero"),
                        ((f"127.0.0.1:{PORT}{PORT}",), "a port past 65535"),
                        (("127.0.0.1:",), "an empty port"),
                        ((f"::1:{PORT}",), "an IPv6 address without brackets"),
                        ((f"local host:{PORT}",), "a name with a space")]:
        req = "GET /healthz HTTP/1.1\r\n" + "".join(f"Host: {h}\r\n" for h in hosts) + "\r\n"
        st, body = raw_reply(req.encode())
        check(st == 400 and b"invalid_host" in body, f"{what} is 400 invalid_host (got {st} {body[:100]!r})")
    st, _ = raw_reply(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    check(st == 200, f"one well-formed Host is still 200 (got {st})")
    st, _ = raw_reply(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{PORT + 1}\r\n\r\n".encode())
    check(st == 421, f"a well-formed Host of another port is still 421 (got {st})")
    # JSON: exactly one value, then only whitespace
    for body, what in [(b'{"query": "logs"} x', "text after the object"),
                       (b'{"query": "logs"}{"query": "more"}', "a second object"),
                       (b'{"query": "logs"}\x00{"k": 100}', "a NUL byte and more after the object"),
                       (b'{"query": "lo\x01gs"}', "a raw control character in a string"),
                       (b'{"query": "lo\ngs"}', "a raw newline in a string")]:
        st, d = post_raw("/v1/search", body, READ)
        check(st == 400 and b"invalid_json" in d, f"{what} is 400 invalid_json (got {st} {d[:120]!r})")
    st, _ = post_raw("/v1/search", b'{"query": "logs"} \r\n\t', READ)
    check(st == 200, f"whitespace after the object is fine (got {st})")
    # \u0000 in every string field of every route: 400 naming the field, nothing stored
    nul = "a\u0000b"
    for path, body, field in [
            ("/v1/search", {"query": nul}, "query"), ("/v1/search", {"query": "x", "path": nul}, "path"),
            ("/v1/search", {"query": "x", "format": nul}, "format"),
            ("/v1/search", {"query": "x", "mode": "bm25\u0000x"}, "mode"),
            ("/v1/prompt", {"question": nul}, "question"),
            ("/v1/prompt", {"question": "x", "template": "default\u0000x"}, "template"),
            ("/v1/ask", {"question": "x", "history": [{"role": "user", "content": nul}]}, "content"),
            ("/v1/ask", {"question": "x", "history": [{"role": "user\u0000", "content": "x"}]}, "role"),
            ("/v1/embeddings", {"input": nul}, "input"), ("/v1/embeddings", {"input": ["a", nul]}, "input"),
            ("/v1/embeddings", {"input": "x", "model": nul}, "model"),
            ("/v1/embeddings", {"input": "x", "input_type": "query\u0000"}, "input_type"),
            ("/v1/documents", {"documents": [{"id": "nul/a\u0000b", "text": "replaced"}]}, "id"),
            ("/v1/documents", {"documents": [{"id": "nul/a", "text": "re\u0000placed"}]}, "text"),
            ("/v1/documents", {"documents": [{"id": "nul/a", "text": "x", "title": nul}]}, "title"),
            ("/v1/documents", {"documents": [{"id": "nul/a", "text": "x", "format": "text\u0000"}]}, "format"),
            ("/v1/documents", {"documents": [{"id": "nul/a", "text": "x", "metadata": {"k": nul}}]}, "k"),
            ("/v1/search", {"query": "x", "a\u0000b": 1}, "key")]:
        tok = ADMIN if path == "/v1/documents" else READ
        st, d = post_raw(path, json.dumps(body).encode(), tok)
        check(st == 400 and field.encode() in d,
              f"\\u0000 in {path} '{field}' is 400 naming it (got {st} {d[:150]!r})")
    # the document "nul/a" the truncation would have hit is untouched: store it, try both
    s_, _, d = request("POST", "/v1/documents", {"documents": [{"id": "nul/a", "text": "the okapi original"}]},
                       token=ADMIN)
    check(s_ == 200 and d.get("added") == 1, f"a plain document is stored (got {s_} {d})")
    post_raw("/v1/documents", json.dumps({"documents": [{"id": "nul/a\u0000b", "text": "the okapi replaced"}]}).encode(), ADMIN)
    st, _, d = request("DELETE", "/v1/documents/nul/a%00b", token=ADMIN)
    check(st == 400, f"DELETE with %00 in the id is 400 (got {st} {d})")
    st, _, d = request("POST", "/v1/search", {"query": "okapi", "mode": "bm25"}, token=READ)
    texts = [r["text"] for r in d.get("results", []) if r["path"] == "nul/a"]
    check(texts and "original" in texts[0] and "replaced" not in texts[0],
          f"neither the NUL id nor the NUL delete touched the document 'nul/a' (got {texts})")
    # the request target: no raw space or control character (a forged log field)
    for target, what in [(b"/v1/status\x1b[31m", "an escape character"),
                         (b"/v1/sta tus", "a space"), (b"/v1/status\x7f", "a DEL")]:
        st, _ = raw_reply(b"GET " + target + b" HTTP/1.1\r\nHost: " + HOST.encode() +
                          b"\r\nAuthorization: Bearer " + READ.encode() + b"\r\n\r\n")
        check(st in (400, None), f"a request target with {what} is 400 or refused (got {st})")
    st, _, d = request("DELETE", "/v1/documents/nul/a", token=ADMIN)
    check(st == 200 and d.get("deleted") == 1, f"the document 'nul/a' is deleted by its own id (got {st} {d})")


def case_log():
    """Issue 18 item 8: kb serve -v writes one line per request, control characters escaped."""
    log = os.environ["SERVE_ERR"]
    sent = [(b"GET /v1/\x1b[31mred\rX HTTP/1.1", b"\\x1b[31mred\\rX"),  # raw ESC and CR
            (b"GET /v1/%1b[2J%0d%0akb%20serve:%20GET%20/forged%20200 HTTP/1.1", b"%0d%0a"),
            (b"G\x1bET /healthz HTTP/1.1", b"G\\x1bET /healthz"),            # in the method
            (b"GET /healthz\nkb serve: GET /forged 200 HTTP/1.1", None),  # LF: MHD refuses it
            (b"GET /healthz HTTP/1.1", b"GET /healthz 200")]
    everything = b""
    for line, shown in sent:
        start = os.path.getsize(log)
        raw_reply(line + b"\r\nHost: " + HOST.encode() + b"\r\n\r\n")
        time.sleep(0.2)  # the line is written as the request completes
        with open(log, "rb") as f:
            f.seek(start)
            got = f.read()
        everything += got
        lines = got.split(b"\n")[:-1]
        # a request MHD refused before it was parsed may have no line, never two
        check((len(lines) == 1 if shown else len(lines) <= 1) and got.endswith(b"\n") == bool(got),
              f"one log line for the request {line[:40]!r} (got {got!r})")
        check(not shown or shown in got, f"the log shows {shown!r} (got {got!r})")
    check(not any(b < 0x20 and b != 0x0a for b in everything) and b"\x7f" not in everything,
          f"no control character reaches the log ({everything!r})")
    check(not any(l.startswith(b"kb serve: GET /forged") for l in everything.split(b"\n")),
          "no request can forge a log line")


# ---- /v1/embeddings as OpenAI's clients use it (issue 20) ----

def kb_embed(texts, query=False):
    """`kb embed --json` of texts (one per line on standard input), the reference vectors."""
    args = [os.environ["KB"], "--json", "embed", "--model", os.environ["MODEL"]] + (["--query"] if query else [])
    out = subprocess.run(args, input="".join(t + "\n" for t in texts).encode(), capture_output=True,
                         check=True).stdout
    return json.loads(out)["embeddings"]


def kb_token_ids(text, special=False):
    args = [os.environ["KB"], "tokenize", "--ids", "--model", os.environ["MODEL"]] + ([] if special else ["--no-special"])
    out = subprocess.run(args + [text], capture_output=True, check=True).stdout.split()
    return [int(x) for x in out]


def max_diff(got, want):
    if len(got) != len(want) or any(len(g) != len(w) for g, w in zip(got, want)):
        return float("inf")
    return max((abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w)), default=0.0)


def embed(body):
    """POST /v1/embeddings: (status, document, vectors decoded from either encoding)."""
    s, _, d = request("POST", "/v1/embeddings", body, token=READ)
    vecs = []
    if s == 200:
        for e in d["data"]:
            v = e["embedding"]
            if isinstance(v, str):
                raw = base64.b64decode(v, validate=True)
                v = list(struct.unpack(f"<{len(raw) // 4}f", raw)) if len(raw) % 4 == 0 else []
            vecs.append(v)
    return s, d, vecs


TEXTS = ["how are the logs rotated", "a second, different text", "Ünïcödé wombats dig burrows"]


def case_embeddings_formats():
    want = kb_embed(TEXTS)
    s, d, floats = embed({"input": TEXTS})
    check(s == 200 and max_diff(floats, want) <= 1e-6,
          f"no encoding_format: floats equal to kb embed --json ({s}, {max_diff(floats, want)})")
    s, d, same = embed({"input": TEXTS, "encoding_format": "float"})
    check(s == 200 and all(isinstance(x, float) for v in d["data"] for x in v["embedding"])
          and same == floats, f"encoding_format float: the same numbers ({s})")
    s, d, b64 = embed({"input": TEXTS, "encoding_format": "base64"})
    check(s == 200 and all(isinstance(e["embedding"], str) for e in d["data"]),
          f"encoding_format base64: each embedding is a base64 string ({s})")
    # JSON's numbers are the float32 values to within a double's precision (cJSON prints 15
    # digits where they read back within DBL_EPSILON); as float32 they are the same values
    as_f32 = [list(struct.unpack(f"<{len(v)}f", struct.pack(f"<{len(v)}f", *v))) for v in floats]
    check(max_diff(b64, want) <= 1e-6 and b64 == as_f32,
          f"base64 decodes (little-endian float32) to the float vectors' values ({max_diff(b64, want)})")
    s, d, one = embed({"input": TEXTS[2], "encoding_format": "base64"})
    check(s == 200 and len(d["data"]) == 1 and one == as_f32[2:], "base64 for a single string input")
    for bad in ("base-64", "Float", "", "binary"):
        s, _, e = request("POST", "/v1/embeddings", {"input": "x", "encoding_format": bad}, token=READ)
        check(s == 400 and is_error(e, "invalid_request") and "encoding_format" in e["error"]["message"],
              f"encoding_format {bad!r} is a 400 naming the field (got {s} {e})")


def case_embeddings_models():
    model_id = os.path.basename(os.environ["MODEL"].rstrip("/"))
    aliases = os.environ["MODEL_ALIASES"].split()
    want = kb_embed(TEXTS[:1])
    s, d, v = embed({"input": TEXTS[0]})
    check(s == 200 and d["model"] == model_id, f"the reply names the model by its folder's last component "
          f"({d.get('model') if s == 200 else s!r}), never the folder's path")
    for name in [model_id] + aliases:
        s, d, v = embed({"input": TEXTS[0], "model": name})
        check(s == 200 and max_diff(v, want) <= 1e-6 and d["model"] == name,
              f"model {name!r} is served, with kb embed's vector, and named in the reply ({s})")
    for other in ("text-embedding-3-large", os.environ["MODEL"], model_id.upper(), "tiny"):
        s, _, e = request("POST", "/v1/embeddings", {"input": "x", "model": other}, token=READ, raw=True)
        doc = json.loads(e)
        check(s == 404 and is_error(doc, "model_not_found") and model_id in doc["error"]["message"],
              f"model {other!r}: 404 model_not_found naming the model served (got {s} {e[:200]!r})")
        check_error_body(e, f"model {other!r}")
    s, d, _ = embed({"input": "x", "dimensions": 32})
    check(s == 200 and len(d["data"][0]["embedding"]) == 32, f"dimensions equal to the model's are served ({s})")
    for dims in (8, 31, 33):
        s, _, e = request("POST", "/v1/embeddings", {"input": "x", "dimensions": dims}, token=READ)
        check(s == 400 and is_error(e, "limit_exceeded") and "'dimensions' must be 32" in e["error"]["message"],
              f"dimensions {dims} for a model not trained for shorter vectors: 400 naming 32 (got {s} {e})")
    s, h, d = request("GET", "/v1/models", token=READ)
    ids = [m.get("id") for m in d.get("data", [])] if s == 200 else []
    check(s == 200 and d.get("object") == "list" and all(m.get("object") == "model" and isinstance(m.get("created"), int)
                                                           and m.get("owned_by") for m in d["data"]),
          f"GET /v1/models has OpenAI's shape ({s} {d})")
    emb = [m for m in d.get("data", []) if m.get("type") == "embedding"] if s == 200 else []
    check([m["id"] for m in emb] == [model_id] + aliases and all(m.get("dimensions") == 32 for m in emb),
          f"the embedding model and its aliases are listed with their dimension ({ids})")
    chat = [m for m in d.get("data", []) if m.get("type") == "chat"] if s == 200 else []
    check([m["id"] for m in chat] == [os.environ["KB_LLM_MODEL"]] and chat[0].get("backend") == "openai",
          f"the configured LLM is listed as the chat model ({ids})")
    check_error_body(json.dumps(d).encode(), "GET /v1/models")


def case_embeddings_batches():
    texts = [f"text number {i} about {TEXTS[i % 3]}" for i in range(2048)]
    want = kb_embed(texts)
    s, d, got = embed({"input": texts, "encoding_format": "base64"})
    check(s == 200 and [e["index"] for e in d["data"]] == list(range(2048)) and max_diff(got, want) <= 1e-6,
          f"2048 inputs in one request: each equals kb embed ({s}, {max_diff(got, want) if s == 200 else ''})")
    lens = [min(len(kb_token_ids(t, special=True)), 64) for t in texts[:5]]
    s, d, _ = embed({"input": texts[:5]})
    check(s == 200 and d["usage"] == {"prompt_tokens": sum(lens), "total_tokens": sum(lens)},
          f"usage counts the model's tokens, [CLS]/[SEP] included ({d.get('usage')} for {lens})")
    s, _, d = request("GET", "/v1/models", token=READ)
    check(s == 200 and [m["type"] for m in d["data"]] == ["embedding"],
          f"GET /v1/models without an LLM configured lists the embedding model alone ({s} {d})")
    s, _, e = request("POST", "/v1/embeddings", {"input": texts + ["one more"]}, token=READ)
    check(s == 400 and is_error(e, "limit_exceeded") and "2048" in e["error"]["message"],
          f"2049 inputs: 400 naming the limit of 2048 (got {s} {e})")
    huge = ["a " * 70000] * 5  # 350,010 tokens as sent, 64 each once cut to the model's maximum
    s, _, e = request("POST", "/v1/embeddings", {"input": huge}, token=READ)
    check(s == 400 and is_error(e, "limit_exceeded") and "300000" in e["error"]["message"],
          f"over 300000 tokens in all: 400 naming the limit (got {s} {e})")
    s, d, v = embed({"input": huge[:4]})
    check(s == 200 and d["usage"]["prompt_tokens"] == 4 * 64, f"280,008 tokens are taken, each input cut to 64 ({s})")
    # token arrays: the model's own ids, as kb tokenize --ids --no-special prints them
    ids = [kb_token_ids(t) for t in texts[:3]]
    s, d, one = embed({"input": ids[0]})
    check(s == 200 and len(one) == 1 and max_diff(one, want[:1]) <= 1e-6,
          f"one tokenized input (an array of ids) equals the text's vector ({s})")
    s, d, three = embed({"input": ids, "encoding_format": "base64"})
    check(s == 200 and max_diff(three, want[:3]) <= 1e-6, f"an array of id arrays equals the texts' vectors ({s})")
    check(s == 200 and d["usage"]["prompt_tokens"] == sum(len(i) + 2 for i in ids), f"usage of token arrays ({d.get('usage')})")
    s, d, empty = embed({"input": [[]]})
    check(s == 200 and max_diff(empty, kb_embed([""])) <= 1e-6, f"an empty id array embeds like an empty text ({s})")
    for bad, why in (([4000], "outside the model's vocabulary"), ([[5], [2**31]], "token ids must be integers"),
                     ([[5], 6], "entry 1"), ([5, "x"], "token ids must be integers")):
        s, _, e = request("POST", "/v1/embeddings", {"input": bad}, token=READ)
        check(s == 400 and is_error(e, "invalid_request") and why in e["error"]["message"],
              f"input {str(bad)[:30]}: 400 saying {why!r} (got {s} {e})")


def case_embeddings_matryoshka():
    """The KB's model here says "matryoshka_min_dim": 8 and has "query: "/"passage: " prefixes."""
    want, want_q = kb_embed(TEXTS), kb_embed(TEXTS, query=True)
    for dims in (8, 20, 32):
        cut = []
        for w in want:
            norm = sum(x * x for x in w[:dims]) ** 0.5
            cut.append([x / norm for x in w[:dims]])
        for fmt in ("float", "base64"):
            s, d, got = embed({"input": TEXTS, "dimensions": dims, "encoding_format": fmt})
            check(s == 200 and max_diff(got, cut) <= 1e-6,
                  f"dimensions {dims} ({fmt}): kb embed's first {dims} values, renormalised ({s}, {max_diff(got, cut) if s == 200 else ''})")
    for dims in (7, 33, 1):
        s, _, e = request("POST", "/v1/embeddings", {"input": "x", "dimensions": dims}, token=READ)
        check(s == 400 and is_error(e, "limit_exceeded") and "from 8 to 32" in e["error"]["message"],
              f"dimensions {dims}: 400 naming the range 8 to 32 (got {s} {e})")
    s, _, q = embed({"input": TEXTS, "input_type": "query"})
    check(s == 200 and max_diff(q, want_q) <= 1e-6 and max_diff(q, want) > 1e-3,
          f"input_type query: kb embed --query's vectors, with the query prefix ({s})")
    for kind in ("passage", "document"):
        s, _, p = embed({"input": TEXTS, "input_type": kind})
        check(s == 200 and max_diff(p, want) <= 1e-6, f"input_type {kind}: the passage vectors ({s})")
    ids = [kb_token_ids(t) for t in TEXTS]
    s, d, qi = embed({"input": ids, "input_type": "query"})
    check(s == 200 and max_diff(qi, want_q) <= 1e-6, f"token arrays as queries get the query prefix too ({s})")
    s, _, e = request("POST", "/v1/embeddings", {"input": "x", "input_type": "search_query"}, token=READ)
    check(s == 400 and is_error(e, "invalid_request") and "input_type" in e["error"]["message"],
          f"an unknown input_type is a 400 naming the field (got {s} {e})")


def slow_connection(tick, stop, cut):
    """One slowloris connection at a time: a request line, then one header line per `tick`
    seconds, never the blank line that ends the headers. When the server closes it, its
    lifetime goes into `cut` and the next connection is made at the next tick."""
    line = 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        except OSError:
            stop.wait(tick)
            continue
        t0 = time.time()
        try:
            s.sendall(f"POST /v1/search HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            while not stop.is_set():
                readable, _, _ = select.select([s], [], [], tick)
                if readable and not s.recv(4096):
                    raise ConnectionError("closed by the server")
                s.sendall(f"X-Slow-{line}: {line}\r\n".encode())
                line += 1
        except OSError:
            cut.append(time.time() - t0)
            stop.wait(tick)
        finally:
            s.close()


def case_slowloris():
    """Slow clients without a token cannot starve the server (issue 18): 100 of them trickle
    header lines while /healthz and an authenticated search keep answering, and each slow
    connection is cut within --header-timeout."""
    header_timeout = float(os.environ["HEADER_TIMEOUT"])
    tick, stop, cuts = 0.5, threading.Event(), [[] for _ in range(100)]
    slow = [threading.Thread(target=slow_connection, args=(tick, stop, cut)) for cut in cuts]
    for t in slow:
        t.start()
    time.sleep(1)  # every slow client connected once
    worst, failures, probes, t_end = 0.0, [], 0, time.time() + 3 * header_timeout
    while time.time() < t_end:
        for method, path, body, token in (("GET", "/healthz", None, None),
                                          ("POST", "/v1/search", {"query": "logs", "k": 3}, READ)):
            t0 = time.time()
            try:
                status = request(method, path, body, token=token)[0]
            except OSError as e:
                status = type(e).__name__
            worst = max(worst, time.time() - t0)
            probes += 1
            if status != 200:
                failures.append(f"{path}: {status}")
        time.sleep(0.1)
    stop.set()
    for t in slow:
        t.join()
    check(not failures, f"/healthz and a search answer 200 while 100 slow clients trickle "
          f"headers ({len(failures)} of {probes} failed: {failures[:3]})")
    check(worst < 2, f"each of those answers within 2 s (slowest {worst:.2f} s)")
    lived = [c for cut in cuts for c in cut]
    check(all(cuts) and max(lived) < header_timeout + 1.5,
          f"the server cuts every slow client within --header-timeout {header_timeout:g} s "
          f"({sum(map(bool, cuts))} of 100 cut, longest lived {max(lived, default=0):.1f} s)")
    # a few alone, under --max-connections: the deadline itself cuts them, bytes or not
    cut, stop = [], threading.Event()
    few = [threading.Thread(target=slow_connection, args=(tick, stop, cut)) for _ in range(3)]
    for t in few:
        t.start()
    time.sleep(header_timeout + 1.5)
    stop.set()
    for t in few:
        t.join()
    check(len(cut) == 3 and all(header_timeout - 0.5 < c < header_timeout + 1.5 for c in cut),
          f"with no one waiting to connect, a slow connection is cut at --header-timeout "
          f"(lived {', '.join(f'{c:.1f}' for c in cut)} s)")
    check(request("GET", "/healthz")[0] == 200, "the server is healthy once the slow clients stop")


CASES = {"auth": case_auth, "limits": case_limits, "sse": case_sse,
         "concurrent": case_concurrent, "embeddings": case_embeddings,
         "dropped": case_dropped, "page": case_page, "filters": case_filters,
         "strict": case_strict, "log": case_log,
         "embeddings_formats": case_embeddings_formats, "embeddings_models": case_embeddings_models,
         "embeddings_batches": case_embeddings_batches,
         "embeddings_matryoshka": case_embeddings_matryoshka,
         "slowloris": case_slowloris}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
