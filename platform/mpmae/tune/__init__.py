"""Ray Tune sweeps over pretext-task sets: one trial = one Ray Train pretraining run."""
