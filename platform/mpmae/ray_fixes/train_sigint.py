"""Ctrl-C during a fit is ours: a checkpoint at the current step, not Ray's abort.

Ray 2.60's ``DataParallelTrainer.fit`` installs its own SIGINT handler once it has started
the controller (an abort that keeps only the last periodic checkpoint), over the handler
that :func:`mpmae.train.preemption.notice_on_signals` installed. The trainer's
``_register_sigint_handler`` is skipped for our trainers; a Ray that lacks it keeps its
own handler (then the first Ctrl-C aborts, SIGTERM still checkpoints).
"""

from __future__ import annotations

from mpmae.ray_fixes.guard import version_ok

TRAIN_SIGINT = "train_sigint"
PRIVATE_NAME = "_register_sigint_handler"


def keep_our_sigint(trainer) -> None:
    """Let ``trainer.fit()`` leave SIGINT to the handler in place when it is called."""
    if version_ok(TRAIN_SIGINT) and hasattr(trainer, PRIVATE_NAME):
        setattr(trainer, PRIVATE_NAME, lambda controller: None)
