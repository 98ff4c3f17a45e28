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


def usable_cpus():
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(count, limit) if limit else count)
