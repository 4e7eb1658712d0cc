"""What `keyhelper run --proxy` tests run as the program: it reports whether
any forbidden value (a real secret, listed one per line in the file named by
its second argument) is in its own environment (/proc/self/environ), then
talks to the API through the proxy its environment points at, and prints one
JSON object.

Usage: run_client.py openai|anthropic FORBIDDEN_FILE
"""

import json
import os
import sys
import time
import urllib.request


def main():
    family, forbidden_file = sys.argv[1], sys.argv[2]
    with open("/proc/self/environ", "rb") as f:
        environ = f.read()
    with open(forbidden_file, "rb") as f:
        forbidden = [line.strip() for line in f if line.strip()]
    report = {"secret_in_environment": any(secret in environ for secret in forbidden)}
    if family == "openai":
        from openai import OpenAI

        client = OpenAI(max_retries=0)
        report["base_url"] = os.environ.get("OPENAI_BASE_URL")
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        report["plain"] = reply.choices[0].message.content
        start, offsets, parts = time.monotonic(), [], []
        stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                offsets.append(time.monotonic() - start)
                parts.append(chunk.choices[0].delta.content)
        report["streamed"] = parts
        report["chunk_offsets"] = offsets
    else:
        base = os.environ["ANTHROPIC_BASE_URL"]
        report["base_url"] = base
        report["has_api_key"] = "ANTHROPIC_API_KEY" in os.environ
        request = urllib.request.Request(
            base + "/v1/messages",
            data=json.dumps({"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={
                "authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"],
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            report["plain"] = json.load(response)["content"][0]["text"]
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
