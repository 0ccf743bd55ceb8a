#!/usr/bin/python3
"""hub_server.py — a fake Hugging Face hub on 127.0.0.1 for testing `kb model pull`.

Usage: hub_server.py ROOT LOG [--fault F]...

ROOT holds repos as ORG/NAME/<files>. The server speaks the hub's URL layout:
  GET /api/models/ORG/NAME/revision/REV[?blobs=true]  -> {"sha", "siblings": [{"rfilename",
      "size", "blobId", "lfs": {"sha256", "size"}}]}
  GET|HEAD /ORG/NAME/resolve/REV/PATH  -> small files directly (ETag = git blob id); large
      (LFS) files as a 302 to /cdn/<sha256> with X-Linked-Etag and X-Linked-Size
  GET /cdn/<sha256>  -> the bytes, with Range support (206, Content-Range; 416 past the end)
REV is "main" or the commit. Errors carry X-Error-Code like the hub's (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo).

Faults:
  drop=N        the first N /cdn downloads send half their body, then the connection drops
  corrupt       /cdn serves the bytes with one byte flipped (the announced SHA-256 stays)
  ignore-range  /cdn ignores Range and always answers 200 with the whole file
  status=CODE   every request is answered with CODE (404 RepoNotFound, 403 GatedRepo, ...)
  token=T       repos need "Authorization: Bearer T": without a token 401 RepoNotFound, with
                another 401 "Invalid credentials in Authorization header" (as the hub does;
                /cdn URLs stay open)
  plain-api     the API lists file names only (no sizes or SHA-256, like ?blobs=true ignored)

Prints the chosen port on stdout; appends one line per request to LOG:
  METHOD PATH range=<Range header or -> auth=<yes|no>
"""
import hashlib
import http.server
import json
import os
import sys
import threading

LFS_MIN = 10_000          # files this large, and weights, are stored in LFS
LFS_SUFFIXES = (".safetensors", ".bin")


class Repo:
    def __init__(self, name, folder):
        self.name = name
        self.files = {}   # path -> bytes
        for base, _, names in os.walk(folder):
            for n in names:
                full = os.path.join(base, n)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                with open(full, "rb") as f:
                    self.files[rel] = f.read()
        digest = hashlib.sha1()
        for rel in sorted(self.files):
            digest.update(rel.encode() + b"\0" + hashlib.sha256(self.files[rel]).digest())
        self.commit = digest.hexdigest()

    @staticmethod
    def is_lfs(path, data):
        return path.endswith(LFS_SUFFIXES) or len(data) >= LFS_MIN

    def sibling(self, path):
        data = self.files[path]
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        s = {"rfilename": path, "blobId": blob, "size": len(data)}
        if self.is_lfs(path, data):
            s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "pointerSize": 134}
        return s


class State:
    def __init__(self, root, log, faults):
        self.repos = {}
        self.blobs = {}   # sha256 -> bytes
        for org in sorted(os.listdir(root)):
            if not os.path.isdir(os.path.join(root, org)):
                continue
            for name in sorted(os.listdir(os.path.join(root, org))):
                repo = Repo(org + "/" + name, os.path.join(root, org, name))
                self.repos[repo.name] = repo
                for data in repo.files.values():
                    self.blobs[hashlib.sha256(data).hexdigest()] = data
        self.log = open(log, "a", buffering=1)
        self.faults = faults
        self.drops_left = int(faults.get("drop", 0))
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "fakehub/1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, body=b"", headers=None, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, error_code=None, message="error"):
        headers = {"X-Error-Code": error_code} if error_code else {}
        headers["X-Error-Message"] = message
        self.answer(code, json.dumps({"error": message}).encode(), headers, "application/json")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        st = self.server.state
        auth = self.headers.get("Authorization")
        st.log.write("%s %s range=%s auth=%s\n" % (self.command, self.path,
                     self.headers.get("Range", "-"), "yes" if auth else "no"))
        code = st.faults.get("status")
        if code:
            named = {"404": "RepoNotFound", "403": "GatedRepo"}.get(code)
            return self.error(int(code), named, "injected HTTP %s" % code)
        path = self.path.split("?")[0]
        if path.startswith("/cdn/"):
            return self.cdn(path[5:])
        token = st.faults.get("token")
        if token and not auth:
            return self.error(401, "RepoNotFound", "Repository not found")
        if token and auth != "Bearer " + token:
            return self.error(401, None, "Invalid credentials in Authorization header")
        if path.startswith("/api/models/"):
            return self.api(path[len("/api/models/"):])
        parts = path.lstrip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            return self.resolve(parts[0] + "/" + parts[1], parts[3], parts[4])
        self.error(404, None, "no route")

    def repo_at(self, name, rev):
        repo = self.server.state.repos.get(name)
        if not repo:
            self.error(404, "RepoNotFound", "Repository not found")
            return None
        if rev not in ("main", repo.commit):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo

    def api(self, rest):
        if "/revision/" not in rest:
            return self.error(404, None, "no route")
        name, rev = rest.split("/revision/", 1)
        repo = self.repo_at(name, rev)
        if repo:
            doc = {"id": name, "modelId": name, "sha": repo.commit,
                   "siblings": [repo.sibling(p) for p in sorted(repo.files)]}
            if "plain-api" in self.server.state.faults:
                doc["siblings"] = [{"rfilename": p} for p in sorted(repo.files)]
            self.answer(200, json.dumps(doc).encode(), ctype="application/json")

    def resolve(self, name, rev, path):
        repo = self.repo_at(name, rev)
        if not repo:
            return
        if path not in repo.files:
            return self.error(404, "EntryNotFound", path + " does not exist")
        s = repo.sibling(path)
        headers = {"X-Repo-Commit": repo.commit}
        if "lfs" in s:
            sha = s["lfs"]["sha256"]
            headers.update({"ETag": '"%s"' % sha, "X-Linked-Etag": '"%s"' % sha,
                            "X-Linked-Size": str(s["size"]), "Location": "/cdn/" + sha})
            return self.answer(302, b"Found. Redirecting", headers)
        headers["ETag"] = '"%s"' % s["blobId"]
        self.answer(200, repo.files[path], headers, "application/octet-stream")

    def cdn(self, sha):
        st = self.server.state
        data = st.blobs.get(sha)
        if data is None:
            return self.error(404, None, "no such blob")
        if "corrupt" in st.faults:
            data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + \
                data[len(data) // 2 + 1:]
        start, code, headers = 0, 200, {"ETag": '"%s"' % sha, "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and "ignore-range" not in st.faults:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                return self.answer(416, b"", {"Content-Range": "bytes */%d" % len(data)})
            code = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        with st.lock:
            drop = st.drops_left > 0
            st.drops_left -= drop
        if not drop or self.command == "HEAD":
            return self.answer(code, body, headers, "application/octet-stream")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    faults, args = {}, sys.argv[3:]
    while args:
        if args[0] != "--fault" or len(args) < 2:
            sys.exit("unknown argument " + args[0])
        key, _, value = args[1].partition("=")
        faults[key] = value
        args = args[2:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # clients hanging up are expected
    server.state = State(sys.argv[1], sys.argv[2], faults)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
