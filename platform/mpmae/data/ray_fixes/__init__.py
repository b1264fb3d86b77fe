"""Fixes for Ray 2.60's streaming executor that every mpmae stream carries; add them to a
Ray Data pipeline of yours with ``mpmae.data.ray_fixes.install(DataContext.get_current())``."""

from mpmae.data.ray_fixes.callbacks import install

__all__ = ["install"]
