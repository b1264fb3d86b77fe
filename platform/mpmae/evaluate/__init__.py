"""Evaluating encoders on labelled downstream sets."""
