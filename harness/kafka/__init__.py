"""Kafka plumbing: where commands find the cluster (client config), topics and consumer groups, and the
embedded single-node broker. Knows Kafka and nothing of models or measurement."""
