"""Kafka plumbing: where commands find the cluster (client config), topics and consumer groups, and the
embedded broker and three-node cluster. Knows Kafka and nothing of models or measurement."""
