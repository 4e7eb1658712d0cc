"""A session of the real `openai` client against keyhelper's proxy.

Usage: client.py BASE_URL API_KEY SECONDS
Runs chat completions back to back for SECONDS (plain, then streaming every
fifth request), 4 requests at a time, and prints one JSON object: how many
requests ran, every error seen, and the arrival offsets of one streamed
response's chunks."""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai


def main(base_url, api_key, seconds):
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
    deadline = time.time() + float(seconds)
    errors = []
    count = 0
    chunk_offsets = []

    def one(i):
        if i % 5 == 4:
            start = time.time()
            offsets = []
            stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                                    stream=True)
            text = ""
            for chunk in stream:
                offsets.append(time.time() - start)
                text += chunk.choices[0].delta.content or ""
            assert text == "part0 part1 part2 part3 part4 ", text
            return offsets
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "hello"
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        i = 0
        while time.time() < deadline:
            futures = [pool.submit(one, i + k) for k in range(4)]
            i += 4
            for future in futures:
                count += 1
                try:
                    offsets = future.result()
                    if offsets and not chunk_offsets:
                        chunk_offsets = offsets
                except Exception as e:  # every failure is reported, none retried
                    errors.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"requests": count, "errors": errors, "chunk_offsets": chunk_offsets}))


if __name__ == "__main__":
    main(*sys.argv[1:])
