"""How many CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota
(containers, CI runners), rather than the machine's count, which oversubscribes a limited
process with threads that then wait on each other."""
import math
import os
from pathlib import Path


def cgroup_cpu_limit(root="/sys/fs/cgroup"):
    """CPUs allowed by the cgroup quota (v2 `cpu.max` or v1 `cpu.cfs_quota_us`), or None."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def own_cgroup_limit(mount="/sys/fs/cgroup", membership="/proc/self/cgroup"):
    """The tightest cgroup v2 quota on the path from this process's own cgroup (read from
    /proc/self/cgroup: a systemd service's CPUQuota sits there) up to the root."""
    try:
        line = next(l for l in Path(membership).read_text().splitlines() if l.startswith("0::"))
    except (OSError, StopIteration):
        return cgroup_cpu_limit(mount)
    folder, limits = Path(mount) / line[3:].strip().lstrip("/"), []
    while True:
        limit = cgroup_cpu_limit(folder)
        if limit:
            limits.append(limit)
        if folder == Path(mount) or Path(mount) not in folder.parents:
            break
        folder = folder.parent
    return min(limits) if limits else None


def usable_cpus():
    """CPUs for this process's threads. LIVE_CPUS caps it: a worker that shares a machine with
    others (a Ray actor given one CPU) must not start a thread per core."""
    try:
        cap = int(os.environ.get("LIVE_CPUS", "0"))
    except ValueError:
        cap = 0
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = own_cgroup_limit()
    count = min(count, limit) if limit else count
    return max(1, min(count, cap) if cap > 0 else count)
