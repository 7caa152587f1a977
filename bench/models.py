"""Both bundled models' speed on this machine: prompt and decode tokens/s, alone and side by side.

Starts a llama-server per model (the portable build, `-np 2`) and sends the same generator-sized
request (a HumanEval-like prompt of about 480 tokens, 200 generated tokens, prompt cache off):
each model alone, each with two requests at once, and both models at once (one request each).
The servers' own timings (`prompt_per_second`, `predicted_per_second`) are reported, with wall
seconds. `--threads` sets llama.cpp threads per server (default: all cores); two servers that
together run more threads than there are cores slow each other down, which `--threads 1` shows.

    .venv/bin/python bench/models.py --doc
    .venv/bin/python bench/models.py --threads 1
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from gryphgen_site import bundle, stack  # noqa: E402

VAR = BASE / "var" / "bench-models"
PROMPT = (
    "Complete this Python module by implementing `separate_paren_groups(paren_string)` as its docstring says. "
    "Reply with the whole module.\n\n```python\nfrom typing import List\n\n\n"
    "def separate_paren_groups(paren_string: str) -> List[str]:\n"
    '    """ Input to this function is a string containing multiple groups of nested parentheses. Your goal is to\n'
    "    separate those group into separate strings and return the list of those.\n"
    "    Separate groups are balanced (each open brace is properly closed) and not nested within each other\n"
    "    Ignore any spaces in the input string.\n"
    "    >>> separate_paren_groups('( ) (( )) (( )( ))')\n"
    "    ['()', '(())', '(()())']\n"
    '    """\n```\n'
) * 3  # about 480 tokens with the chat template
MAX_TOKENS = 200


def request(url: str) -> dict:
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "seed": 42,
        "cache_prompt": False,
        "ignore_eos": True,  # always MAX_TOKENS generated: rates comparable between models
    }
    started = time.monotonic()
    req = urllib.request.Request(
        url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        reply = json.load(resp)
    timings = reply.get("timings", {})
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "prompt_tokens": reply["usage"]["prompt_tokens"],
        "completion_tokens": reply["usage"]["completion_tokens"],
        "prompt_tps": round(timings.get("prompt_per_second", 0), 1),
        "decode_tps": round(timings.get("predicted_per_second", 0), 1),
    }


def together(urls: list) -> list:
    """One request per url, all at once."""
    results = [None] * len(urls)

    def one(i, url):
        results[i] = request(url)

    threads = [threading.Thread(target=one, args=(i, url)) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads per server")
    parser.add_argument("--doc", action="store_true", help="write the summary into docs/benchmarks.md")
    args = parser.parse_args()
    models = {name: BASE / "var" / "models" / b.name for name, b in bundle.BUNDLES.items()}
    for name, path in models.items():
        if not path.exists():
            sys.exit(f"error: the {name} model {path} is missing; run `make setup`")
    urls = {name: f"http://127.0.0.1:{stack.free_port()}" for name in models}
    services = []
    try:
        for name, path in models.items():
            services.append(
                stack.start_llama(urls[name], path, VAR / "log", name=f"llama-{name}", parallel=2, threads=args.threads)
            )
        for url in urls.values():
            request(url)  # warm up: page the weights in
        result = {"threads_per_server": args.threads, "cores": os.cpu_count(), "max_tokens": MAX_TOKENS, "runs": {}}
        for name, url in urls.items():
            result["runs"][f"{name} alone"] = [request(url)]
            result["runs"][f"{name}, two requests"] = together([url, url])
        result["runs"]["both models side by side"] = together(list(urls.values()))
    finally:
        for service in reversed(services):
            service.stop()
    print(json.dumps(result, indent=2))
    if args.doc:
        write_doc(result)
    return 0


def write_doc(result):
    from benchmarks.report import write_section

    lines = ["| run | requests | prompt tokens | prompt tok/s | decode tok/s | wall s |", "|---|---|---|---|---|---|"]
    for run, items in result["runs"].items():
        for item in items:
            lines.append(
                f"| {run} | {len(items)} | {item['prompt_tokens']} | {item['prompt_tps']} | {item['decode_tps']} | "
                f"{item['wall_s']} |"
            )
    write_section(
        f"models-t{result['threads_per_server']}",
        f"""## The two bundled models' speed (`bench/models.py --threads {result["threads_per_server"]}`)

{time.strftime("%Y-%m-%d")}, {result["cores"]} cores, portable llama.cpp build, `-np 2`, {result["threads_per_server"]}
thread(s) per server; one ~480-token prompt, {result["max_tokens"]} generated tokens (`ignore_eos`), prompt cache
off. One row per request; "side by side" is one request to each model's server at once.

{chr(10).join(lines)}
""",
    )


if __name__ == "__main__":
    sys.exit(main())
