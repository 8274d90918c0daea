"""Events: the envelope, validation, and the collector that makes them durable."""
