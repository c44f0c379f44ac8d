"""The edges: the only modules that talk to Kafka Connect or read files and the environment."""
