"""A scripted OpenAI-compatible server: deterministic LLM replies for workflow-logic tests.

Replies are queued per purpose, which the LLM client sends in the `X-Gryphgen-Purpose` header
(generate, analyze, monitor_tests, monitor_inputs, monitor_verdict, decide, vote, critic, split, part, integrate). A dict reply is sent as
JSON; a str is sent verbatim (to script broken output). The last reply of a purpose repeats.
A script for `purpose@model` (the model name in the request) answers that model before `purpose`.
`fail_when(purpose, body)`, if set and true for a request, answers it with HTTP 500 instead.
`seconds_per_call` makes every answer take that long (a model's cost, for tests that weigh it).
"""

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULTS = {
    "generate": "```python\ndef solve():\n    return 1\n```",
    "analyze": {"issues": [], "summary": "looks fine"},
    "monitor_tests": {"tests": [{"call": "solve()", "expected": "1"}]},
    "monitor_verdict": {"aligned": True, "evidence": "tests pass"},
    "monitor_inputs": {"inputs": [{"args": "['Hello World']"}, {"args": "['']"}]},
    "decide": {"decision": "accept", "reason": "all verdict tests pass"},
    "vote": {"best": 1, "reason": "clearest"},
    "critic": {"points": "no further points"},
    "split": {"parts": [{"function": "helper", "spec": "return 1"}]},
    "part": "```python\ndef helper():\n    return 1\n```",
    "diagnose": {"failure_class": "wrong_answer", "evidence": "the scripted diagnosis"},
    "integrate": "```python\nfrom part_1 import helper\n\n\ndef solve():\n    return helper()\n```",
}


class ScriptedLLM:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        handler = type("Handler", (_Handler,), {"llm": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.scripts = defaultdict(list)
            self.requests = []
            self.fail_when = None
            self.seconds_per_call = 0.0

    def script(self, purpose, *replies):
        with self.lock:
            self.scripts[purpose].extend(replies)

    def next_reply(self, purpose, key=None):
        with self.lock:
            queue = self.scripts[key or purpose]
            reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else DEFAULTS[purpose])
        return reply if isinstance(reply, str) else json.dumps(reply)

    def reply_for(self, purpose, model):
        """A `purpose@model` script answers first; else `next_reply` (which tests may wrap)."""
        key = f"{purpose}@{model}"
        return self.next_reply(purpose, key) if self.scripts.get(key) else self.next_reply(purpose)

    def purposes(self):
        return [r["purpose"] for r in self.requests]

    def stop(self):
        self.server.shutdown()


class _Handler(BaseHTTPRequestHandler):
    llm: ScriptedLLM

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": "ok"} if self.path == "/health" else {"data": [{"id": "scripted"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        purpose = self.headers.get("X-Gryphgen-Purpose") or "generate"
        with self.llm.lock:
            self.llm.requests.append(
                {"purpose": purpose, "body": body, "authorization": self.headers.get("Authorization")}
            )
            fail = self.llm.fail_when is not None and self.llm.fail_when(purpose, body)
        if fail:
            self._send(500, {"error": {"message": "scripted failure", "type": "server_error"}})
            return
        content = self.llm.reply_for(purpose, body.get("model", ""))
        time.sleep(self.llm.seconds_per_call)
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        self._send(
            200,
            {
                "id": "scripted",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_tokens + len(content) // 4,
                },
            },
        )
