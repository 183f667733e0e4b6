"""Business events as CloudEvents: out of legacy systems' tables, and the ones the gateway's routes
declare, kept in the store until a broker (NATS JetStream, RabbitMQ) has them."""
