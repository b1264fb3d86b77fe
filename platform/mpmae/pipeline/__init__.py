"""Work that runs one wing after another: pretraining a run, then evaluating its encoder
(``mpmae pretrain`` with ``eval.datasets``, and each finished trial of a sweep scored on
its objective's dataset)."""
