"""A mock OpenAI-compatible upstream for keyhelper's proxy tests.

It accepts only current credentials: a bearer token `token-<n>-<expiry>` (what
the tests' fake `az` issues) is refused with 401 once its expiry has passed, or
when `n` is below the number in the file given by --min-token-file (to revoke
tokens on demand). Every request is logged, one JSON line each, to --log.

Usage: upstream.py --port-file F --log F [--min-token-file F] [--cert C --key K]
"""

import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--min-token-file")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    log_lock = threading.Lock()

    def log(entry):
        with log_lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def accepted(auth):
        if not auth or not auth.startswith("Bearer token-"):
            return False
        try:
            _, n, expiry = auth[len("Bearer "):].split("-")
            n, expiry = int(n), int(expiry)
        except ValueError:
            return False
        minimum = 0
        if args.min_token_file:
            try:
                with open(args.min_token_file) as f:
                    minimum = int(f.read().strip() or 0)
            except FileNotFoundError:
                pass
        return expiry > time.time() and n >= minimum

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def check(self):
            auth = self.headers.get("authorization")
            ok = accepted(auth)
            log({
                "path": self.path,
                "host": self.headers.get("host"),
                "peer": self.client_address[1],
                "status": 200 if ok else 401,
                "token": (auth or "")[len("Bearer "):],
                "client_key_seen": any("kh-" in (self.headers.get(h) or "") or "client-key" in (self.headers.get(h) or "")
                                       for h in ("authorization", "api-key", "x-api-key")),
            })
            if not ok:
                self.reply(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            return ok

        def do_GET(self):
            if self.check():
                self.reply(200, {"object": "list", "data": [{"id": "gpt-test", "object": "model"}]})

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if not self.check():
                return
            if request.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i in range(5):
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test",
                             "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}]}
                    self.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    time.sleep(0.2)
                self.write_chunk(b"data: [DONE]\n\n")
                self.write_chunk(b"")
            else:
                self.reply(200, {
                    "id": "c", "object": "chat.completion", "created": 0, "model": "gpt-test",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        def write_chunk(self, data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
