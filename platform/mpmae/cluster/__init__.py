"""Reaching Ray: connecting to a cluster or the embedded local Ray (``connect``), a task's
own error (``task_result``), and ``mpmae submit``'s Ray Jobs (``submit``) with what they
upload (``upload``) and the cluster token they send (``auth``)."""
