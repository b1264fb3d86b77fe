"""CPU time of every process of a benchmark's session: the driver and all its descendants
(with a local ``ray.init``: the GCS, the raylet, Ray's agents and every worker; a local S3
server and a latency proxy in front of it that the benchmark started)."""

from __future__ import annotations

import psutil

ROLES = ("driver", "ray_workers", "ray_daemons", "s3_endpoint", "s3_proxy")


def snapshot() -> dict[int, tuple[str, float]]:
    """pid → (role, CPU seconds used so far, user + system) of each live session process."""
    me = psutil.Process()
    out = {me.pid: ("driver", _cpu(me))}
    for p in me.children(recursive=True):
        try:
            out[p.pid] = (role(p), _cpu(p))
        except psutil.Error:  # ended or out of reach between listing and reading it
            continue
    return out


def core_ms_per_tile(before: dict, after: dict, tiles: int) -> dict:
    """CPU ms per tile between two snapshots, by role and in total. A process that ended in
    between is lost with the CPU it used since ``before``: ``ended`` counts them."""
    used = seconds_by_role(before, after)
    out = {role: round(1e3 * s / max(tiles, 1), 3) for role, s in used.items()}
    out["total"] = round(sum(out.values()), 3)
    out["ended"] = len(set(before) - set(after))
    return out


def seconds_by_role(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each role used between two snapshots, by the processes alive at the second."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in after.items():
        used[role] += seconds - before.get(pid, (role, 0.0))[1]
    return used


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def role(p: psutil.Process) -> str:
    """Ray names its worker processes ``ray::…`` (task, actor or IDLE); a benchmark's own
    S3 server is ``python -m moto.server``, its latency proxy ``infra/local/s3_proxy.py``."""
    cmdline = p.cmdline()
    if "moto.server" in cmdline:
        return "s3_endpoint"
    if any(a.endswith("s3_proxy.py") for a in cmdline):
        return "s3_proxy"
    is_worker = bool(cmdline) and (cmdline[0].startswith("ray::")
                                   or any(a.endswith("default_worker.py") for a in cmdline))
    return "ray_workers" if is_worker else "ray_daemons"
