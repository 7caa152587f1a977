"""Limits that hold on every host: cgroup v1 or v2, and nothing runs where neither is usable."""

import pytest
from django.conf import settings

from agents import sandbox, sandbox_slots

V2_MOUNTINFO = "30 23 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
NO_CGROUPS = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"


@pytest.fixture
def v2_tree(tmp_path):
    """A directory laid out like a v2 cgroupfs, with this process's group at /services/gryphgen."""
    group = tmp_path / "services" / "gryphgen"
    group.mkdir(parents=True)
    (group / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (group / "cgroup.subtree_control").write_text("\n")
    (group / "cgroup.procs").write_text("")
    return tmp_path, group


def test_a_v2_host_gets_one_group_per_slot_with_memory_swap_pids_and_cpu_limits(v2_tree):
    root, group = v2_tree
    found = sandbox_slots.hierarchy(V2_MOUNTINFO.format(root=root), "0::/services/gryphgen\n")
    assert (found.version, found.parents, found.controllers) == (2, {"": group}, ("memory", "pids", "cpu"))
    assert found.describe() == "cgroup v2 (memory, pids, cpu)"
    limits = {**settings.GRYPHGEN_SANDBOX_LIMITS, "memory_mb": 256, "processes": 16, "cpus": 0.5}
    groups, version = sandbox_slots._make_cgroups(3, limits, found)
    slot_group = group / "gryphgen-slot-3"
    assert version == 2 and groups == {"memory": slot_group, "pids": slot_group, "cpu": slot_group}
    assert (group / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    written = {
        name: (slot_group / name).read_text() for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.max")
    }
    # pids.max: the run's 16 processes and the slot's spawner
    assert written == {"memory.max": str(256 * 1024 * 1024), "memory.swap.max": "0", "pids.max": "17",
                       "cpu.max": "50000 100000"}  # fmt: skip
    (slot_group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (slot_group / "pids.events").write_text("max 7\n")
    (slot_group / "memory.peak").write_text("123456\n")
    slot = sandbox_slots.Slot(3, 60003, root, groups, version)
    usage = slot.counters()
    assert (usage.oom_kills, usage.process_limit_hits, usage.peak_memory_bytes) == (1, 7, 123456)


def test_a_v2_group_without_memory_or_pids_is_not_used(v2_tree):
    root, group = v2_tree
    (group / "cgroup.controllers").write_text("cpu io\n")
    found = sandbox_slots.hierarchy(V2_MOUNTINFO.format(root=root), "0::/services/gryphgen\n")
    assert found.version == 0 and "refuses to run" in found.describe()


def test_a_host_without_usable_cgroups_runs_nothing(monkeypatch, tmp_path):
    """Fail closed, for real: the slot cannot be prepared, the run is `unavailable` and says why."""
    empty = sandbox_slots.hierarchy(NO_CGROUPS, "0::/\n")
    assert empty.version == 0
    monkeypatch.setattr(sandbox_slots, "hierarchy", lambda: empty)
    marker = tmp_path / "ran"
    result = sandbox.run({"main.py": f"open({str(marker)!r}, 'w')\n"}, ["/runtime/bin/python", "main.py"])
    assert result.status == "unavailable" and "refuses to run" in result.stderr
    assert not marker.exists()


def test_a_run_that_cannot_enter_its_cgroup_runs_nothing(monkeypatch, tmp_path):
    """The host shell that moves a run into its slot's cgroups stops before the jail when a move
    fails; the run is `unavailable` and says which group."""
    group = tmp_path / "gryphgen-slot"
    (group / "cgroup.procs").mkdir(parents=True)  # nothing can be written into it
    (group / "memory.events").write_text("oom_kill 0\n")
    (group / "pids.events").write_text("max 0\n")
    monkeypatch.setattr(sandbox_slots, "_make_cgroups", lambda index, limits: ({"memory": group, "pids": group}, 2))
    result = sandbox.run({"main.py": "print('ran')\n"}, ["/runtime/bin/python", "main.py"])
    assert result.status == "unavailable" and f"cannot enter the cgroup {group}/cgroup.procs" in result.stderr
    assert "ran" not in result.stdout


def test_this_host_holds_memory_swap_processes_and_cpu_in_its_cgroups():
    found = sandbox_slots.hierarchy()
    assert found.version in (1, 2) and {"memory", "pids"} <= set(found.controllers)
    limits = settings.GRYPHGEN_SANDBOX_LIMITS
    with sandbox_slots.claim(limits, wait_seconds=30, nsjail=sandbox.nsjail_binary()) as slot:
        memory = slot.cgroups["memory"]
        if slot.version == 1:
            assert int((memory / "memory.limit_in_bytes").read_text()) == limits["memory_mb"] * 1024 * 1024
            if (memory / "memory.memsw.limit_in_bytes").exists():
                assert int((memory / "memory.memsw.limit_in_bytes").read_text()) == limits["memory_mb"] * 1024 * 1024
            if cpu := slot.cgroups.get("cpu"):
                assert int((cpu / "cpu.cfs_quota_us").read_text()) == int(limits["cpus"] * 100_000)
        else:
            assert (memory / "memory.swap.max").read_text().strip() == "0"
        assert int((slot.cgroups["pids"] / "pids.max").read_text()) == limits["processes"] + 1  # and the spawner
