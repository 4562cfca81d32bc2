"""Operating models over Kafka: the model monitor (`harness monitor`), a Kafka application that reads the
results (and, when there are labels, a feedback topic), computes per time window the score distribution's
drift against the bundle's reference predictions (PSI, KS), throughput, latency p99, the dead-letter rate
and live AUC, writes an alert event to an alerts topic when a rule fires, and exposes the same figures as
Prometheus metrics. Alerting rules for Prometheus itself live in deploy/prometheus/."""
