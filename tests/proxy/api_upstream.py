"""A mock of the OpenAI and Anthropic HTTP APIs for keyhelper's `run --proxy`
and failover tests, answering as the real APIs do (bodies and headers as
documented in shared/CONTRACTS.md).

Keys are accepted from `Authorization: Bearer` or `x-api-key`. What a key
gets is steered by files in --control DIR, named after the key:
- `quota-<key>`: 429 with the API's "quota gone" error (OpenAI
  `insufficient_quota`; Anthropic: 400 "credit balance is too low");
- `limit-<key>` holding N: 429 rate limit with `retry-after: N` (and, for
  Anthropic, `anthropic-ratelimit-requests-reset` N seconds ahead);
- `valid-keys`: if present, only the keys listed (one per line) are
  accepted; others get 401.
Every request is logged as one JSON line (path, key, status) to --log.

Endpoints: GET /v1/models, POST /v1/chat/completions (with `stream`),
POST /v1/messages (Anthropic, with `stream`).

Usage: api_upstream.py --port-file F --log F --control DIR
"""

import argparse
import datetime
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--control", required=True)
    args = parser.parse_args()
    log_lock = threading.Lock()

    def log(entry):
        with log_lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def control(name):
        try:
            with open(os.path.join(args.control, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def key(self):
            auth = self.headers.get("authorization") or ""
            if auth.lower().startswith("bearer "):
                return auth[7:].strip()
            return (self.headers.get("x-api-key") or "").strip()

        def reply(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def refuse(self, anthropic):
            """Answers the key's quota or rate-limit state; True when it did."""
            key = self.key()
            valid = control("valid-keys")
            if valid is not None and key not in valid.split():
                self.record(key, 401)
                if anthropic:
                    self.reply(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
                else:
                    self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
                return True
            if control(f"quota-{key}") is not None:
                if anthropic:
                    self.record(key, 400)
                    self.reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}})
                else:
                    self.record(key, 429)
                    self.reply(429, {"error": {"message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
                return True
            limit = control(f"limit-{key}")
            if limit is not None:
                seconds = int(limit)
                self.record(key, 429)
                if anthropic:
                    reset = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
                    self.reply(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}},
                               [("retry-after", str(seconds)), ("anthropic-ratelimit-requests-reset", reset)])
                else:
                    self.reply(429, {"error": {"message": "Rate limit reached for requests", "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
                               [("retry-after", str(seconds)), ("x-ratelimit-reset-requests", f"{seconds}s")])
                return True
            return False

        def record(self, key, status):
            log({"path": self.path, "key": key, "status": status})

        def do_GET(self):
            if self.refuse(False):
                return
            self.record(self.key(), 200)
            self.reply(200, {"object": "list", "data": [{"id": "gpt-test", "object": "model", "owned_by": "test"}]})

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            anthropic = self.path.startswith("/v1/messages")
            if self.refuse(anthropic):
                return
            request = json.loads(raw or b"{}")
            self.record(self.key(), 200)
            if anthropic:
                self.anthropic(request)
            else:
                self.openai(request)

        def openai(self, request):
            model = request.get("model", "gpt-test")
            if request.get("stream"):
                self.start_stream()
                for i in range(5):
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}]}
                    self.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    time.sleep(0.2)
                done = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.write_chunk(f"data: {json.dumps(done)}\n\n".encode())
                self.write_chunk(b"data: [DONE]\n\n")
                self.write_chunk(b"")
            else:
                self.reply(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from the mock"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5},
                })

        def anthropic(self, request):
            model = request.get("model", "claude-test")
            if request.get("stream"):
                self.start_stream()
                events = [("message_start", {"type": "message_start", "message": {"id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
                          ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
                events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"part{i} "}}) for i in range(3)]
                events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                           ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
                           ("message_stop", {"type": "message_stop"})]
                for name, data in events:
                    self.write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    time.sleep(0.05)
                self.write_chunk(b"")
            else:
                self.reply(200, {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                                 "content": [{"type": "text", "text": "hello from the mock"}],
                                 "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 4}})

        def start_stream(self):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

        def write_chunk(self, data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
