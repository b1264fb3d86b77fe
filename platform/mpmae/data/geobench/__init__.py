"""Reading GEO-Bench v1.0 datasets safely, without the ``geobench`` package."""
