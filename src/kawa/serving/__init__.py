"""Serving: the prediction store, batch prediction, and online prediction."""
