"""Memory's effect on HumanEval's dev split: pass@1 and tokens with memory on vs off.

dev (even task numbers) is cut in halves: dev-a (task number ≡ 0 mod 4) and dev-b (≡ 2 mod 4).
On the private stack of bench/humaneval.py, in one run:

1. learn: dev-a with `--memory`, starting from an empty memory (user `bench-memory`): every
   accepted solution is remembered;
2. off: dev-b with memory off (user `bench`);
3. on: dev-b with `--memory`: the generator's prompts carry the owner's relevant memories
   (never the same problem; the hidden tests never enter memory at all);
4. variants: dev-b asked again under new names (`--variant`: each entry point renamed), with
   memory off and on: repeated work, where memory may answer with the original's accepted
   solution (agents/reuse.py: no model call when it passes the variant's verdict tests).

Memory keeps learning in step 3 as it does in use, so a dev-b problem may also recall a dev-b
solution accepted earlier in that step; the report counts how many recalled memories came from
dev-a and how many from dev-b. pass@1 difference (on − off) with a paired bootstrap interval.
Prints JSON and rewrites the memory-effect section of docs/benchmarks.md.

    .venv/bin/python bench/memory_effect.py [--mode single] [--limit N] [--resume] [--no-doc]
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.humaneval import BENCH_VAR  # noqa: E402
from benchmarks.stack import private_stack  # noqa: E402

MEMORY_OWNER = "bench-memory"


def run(mode, split, args, memory, variant=False):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from benchmarks.command import run_name

    argv = ["--mode", mode, "--split", split, "--concurrency", str(args.concurrency)]
    argv += ["--resume" if args.resume else "--fresh"] + (["--limit", str(args.limit)] if args.limit else [])
    try:
        call_command("gryphgen", "bench", "humaneval", *argv, *["--memory"] * memory, *["--variant"] * variant)
    except CommandError as exc:
        what = f"{split}{' variant' * variant} run (memory {'on' if memory else 'off'})"
        raise SystemExit(f"error in the {what}: {exc}") from exc
    name = f"{mode}-{run_name({'split': split, 'variant': variant, 'memory': memory})}.json"
    return json.loads((BENCH_VAR / "humaneval" / name).read_text())


def recalled(rows, dev_a):
    """Over the problems: how many prompts carried memories, and where those memories came from
    (by their memory key: a dev-a problem, or dev-b; and the problem's own original, which only a
    variant may recall)."""
    from agents.models import AgentCall
    from memory.models import MemoryEntry

    counts = {"from_dev_a": 0, "from_dev_b": 0, "of_the_original": 0, "problems_with_memories": 0, "answered": 0}
    for problem_id, row in rows.items():
        ids = [m["id"] for memories in AgentCall.objects.filter(task_id=row["task"]).values_list("memories", flat=True)
               for m in memories]  # fmt: skip
        ids += [row["reused"]] if row.get("reused") else []  # answered from memory, without a prompt
        counts["answered"] += bool(row.get("reused"))
        keys = dict(MemoryEntry.objects.filter(pk__in=ids).values_list("pk", "key"))
        counts["problems_with_memories"] += bool(ids)
        counts["from_dev_a"] += sum(keys.get(i) in dev_a for i in ids)
        counts["from_dev_b"] += sum(keys.get(i) not in dev_a for i in ids)
        counts["of_the_original"] += sum(keys.get(i) == problem_id for i in ids)
    return counts


def where_recalled(on_rows, off_rows):
    """Solved with memory on and off, over the problems memory on recalled something for (in a
    prompt, or as the answer)."""
    recalled_ids = [
        pid for pid, row in on_rows.items() if (row.get("memories") or row.get("reused")) and pid in off_rows
    ]
    return {
        "problems": len(recalled_ids),
        "on_passed": sum(on_rows[pid]["pass"] for pid in recalled_ids),
        "off_passed": sum(off_rows[pid]["pass"] for pid in recalled_ids),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="single")
    parser.add_argument("--limit", type=int, help="the first N problems of each half")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run (keeps the memory)")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    with private_stack(BENCH_VAR):
        from django.conf import settings

        from benchmarks import runner, statistics
        from memory.models import MemoryEntry

        owned = MemoryEntry.objects.filter(owner__username=MEMORY_OWNER)
        if not args.resume:
            owned.delete()
        learn = run(args.mode, "dev-a", args, memory=True)
        dev_a = set(learn["selection"])
        learned = owned.filter(key__in=dev_a).count()
        off = run(args.mode, "dev-b", args, memory=False)
        on = run(args.mode, "dev-b", args, memory=True)
        variant_off = run(args.mode, "dev-b", args, memory=False, variant=True)
        variant_on = run(args.mode, "dev-b", args, memory=True, variant=True)
        selection = on["selection"]
        result = {
            "benchmark": "memory-effect",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": runner.machine(),
            "model": on.get("model", ""),
            "mode": args.mode,
            "learned_from": {"split": "dev-a", **learn["totals"], "memories": learned},
            "off": off["totals"],
            "on": on["totals"],
            "on_vs_off": statistics.paired_bootstrap(on["problems"], off["problems"], selection),
            "recalled": recalled(on["problems"], dev_a),
            "variant": {
                "off": variant_off["totals"],
                "on": variant_on["totals"],
                "on_vs_off": statistics.paired_bootstrap(variant_on["problems"], variant_off["problems"], selection),
                "recalled": recalled(variant_on["problems"], dev_a),
                "where_recalled": where_recalled(variant_on["problems"], variant_off["problems"]),
            },
            "min_similarity": settings.GRYPHGEN_MEMORY_MIN_SIMILARITY,
            "reuse_match": settings.GRYPHGEN_MEMORY_REUSE_MATCH,
            "partial": any(r["partial"] for r in (learn, off, on, variant_off, variant_on)),
            "command": "bench/memory_effect.py " + " ".join(sys.argv[1:]),
        }
    print(json.dumps(result, indent=2))
    if not args.no_doc:
        write_doc(result)


def write_doc(r):
    from benchmarks.report import write_section

    def row(name, t):
        return (
            f"| {name} | {t['passed']}/{t['done']} | {t['pass_at_1']} | {t['tokens']:,} | {t['tokens_per_solved']} "
            f"| {t['seconds_per_problem']} |"
        )

    def difference(diff):
        ci = f"{diff['ci95'][0]:+.2f} to {diff['ci95'][1]:+.2f}" if diff and diff["ci95"] else "n/a"
        return f"{diff['difference'] if diff else 'n/a'} (95% CI {ci}, paired over {diff['problems'] if diff else 0} problems)"

    rec, var = r["recalled"], r["variant"]
    write_section(
        "memory-effect",
        f"""## Memory's effect on HumanEval dev (`bench/memory_effect.py`)

{r["date"]}, {r["machine"]}, model `{r["model"]}`, mode `{r["mode"]}`{" (partial)" if r["partial"] else ""}.
Memory first learned dev-a ({r["learned_from"]["done"]} problems, {r["learned_from"]["passed"]} solved, {r["learned_from"]["memories"]}
accepted solutions remembered); then dev-b ran with memory off and with it on.
Command: `.venv/bin/python {r["command"]}`.

| dev-b | solved | pass@1 | tokens | tokens / solved | s / problem |
|---|---|---|---|---|---|
{row("memory off", r["off"])}
{row("memory on", r["on"])}

Δ pass@1 (on − off): {difference(r["on_vs_off"])}. With memory on, memory
recalled something for {rec["problems_with_memories"]} problems ({rec["answered"]} answered from memory outright):
{rec["from_dev_a"]} memories from dev-a, {rec["from_dev_b"]} from dev-b solutions accepted earlier in the same run
(memory keeps learning, as in use; never the problem's own).

**Repeated work.** Then each dev-b problem was asked for again under a new name (`--variant`: the
entry point renamed throughout the prompt, and the hidden `check` run on the renamed function),
with memory off and on; by then memory held the dev-b solutions accepted above.

| dev-b, asked again | solved | pass@1 | tokens | tokens / solved | s / problem |
|---|---|---|---|---|---|
{row("memory off", var["off"])}
{row("memory on", var["on"])}

Δ pass@1 (on − off): {difference(var["on_vs_off"])}. With memory on, memory
recalled something for {var["recalled"]["problems_with_memories"]} problems; {var["recalled"]["answered"]} were answered from memory outright (the
remembered solution passed the variant's verdict tests in the sandbox: no model call), and
{var["recalled"]["of_the_original"]} of the memories recalled were the problem's own earlier accepted solution (under its old
name). On those {var["where_recalled"]["problems"]} problems memory on solved {var["where_recalled"]["on_passed"]}, memory off {var["where_recalled"]["off_passed"]}.

Memories enter a prompt only at cosine similarity `GRYPHGEN_MEMORY_MIN_SIMILARITY` =
{r["min_similarity"]} or more; a remembered solution answers a request only if their texts match
(difflib ≥ `GRYPHGEN_MEMORY_REUSE_MATCH` = {r["reuse_match"]}, names set aside) and it passes the new
verdict tests. The hidden tests never enter memory.
""",
    )


if __name__ == "__main__":
    main()
