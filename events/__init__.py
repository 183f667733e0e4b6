"""Business events out of legacy systems, as CloudEvents, to a broker (NATS JetStream)."""
