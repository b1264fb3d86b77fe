"""One readable progress line per report, printed by the Ray Train controller."""

from __future__ import annotations

import time

from ray.train import UserCallback


class ConsoleProgress(UserCallback):
    """``step 40/100 (40%) loss 1.234 · 55 tiles/s · data wait 3% · ETA 1m05s``"""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        m = metrics[0] if metrics else {}
        if "step" not in m:
            return
        now, step, total = time.time(), int(m["step"]), int(m["total_steps"])
        if self._start is None:
            self._start = (now, step)
        print(format_progress(m, eta_s=self._eta(now, step, total),
                              saved=checkpoint is not None), flush=True)

    def _eta(self, now: float, step: int, total: int) -> float | None:
        started, first = self._start
        if step <= first:
            return None
        return (now - started) / (step - first) * (total - step)


def format_progress(m: dict, eta_s: float | None, saved: bool = False) -> str:
    step, total = int(m["step"]), int(m["total_steps"])
    parts = [f"step {step}/{total} ({step / total:.0%})", f"loss {m['loss']:.4f}",
             f"{m['tiles_per_s']:.0f} tiles/s", f"data wait {m['data_wait_fraction']:.0%}",
             f"lr {m['lr']:.2e}"]
    if eta_s is not None:
        parts.append(f"ETA {int(eta_s) // 60}m{int(eta_s) % 60:02d}s")
    if saved:
        parts.append("checkpoint saved")
    return "[mpmae] " + " · ".join(parts)
