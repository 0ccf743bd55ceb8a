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
import socket
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
    s, _, d = request("POST", "/v1/ask", {"question": "x", "template": "../../etc/passwd"}, token=READ)
    check(s == 400 and is_error(d, "invalid_request"), f"a template path over HTTP is refused (got {s})")
    s, _, d = request("POST", "/v1/embeddings", {"input": ["a"] * 101}, token=READ)
    check(s == 400 and is_error(d, "limit_exceeded"), f"too many embedding inputs is 400 (got {s})")
    s, _, d = request("POST", "/v1/documents", {"documents": [{"id": "a", "text": 5}]}, token=ADMIN)
    check(s == 400 and is_error(d, "invalid_request"), f"a document without text is 400 (got {s})")
    # connections: idle ones past --max-connections make the next request a 429
    n = int(os.environ["MAX_CONNECTIONS"])
    idle = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(n + 1)]
    time.sleep(0.3)
    try:
        s, _, d = request("GET", "/v1/status", token=READ)
        check(s == 429 and is_error(d, "too_many_connections"),
              f"a request past --max-connections open connections is 429 (got {s})")
    except OSError as e:
        check(False, f"a request past --max-connections gets a reply, not {e!r}")
    for c in idle:
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
    s, _, e = request("POST", "/v1/embeddings", {"input": [1, 2, 3]}, token=READ)
    check(s == 400 and is_error(e, "invalid_request"), f"token-id input is 400 (got {s})")
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


CASES = {"auth": case_auth, "limits": case_limits, "sse": case_sse,
         "concurrent": case_concurrent, "embeddings": case_embeddings,
         "dropped": case_dropped, "page": case_page,
         "filters": case_filters}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
