"""JVM plumbing shared by the adapters (the process's one JPype JVM) and the harness (the broker's and the
Kafka Streams app's jars): Maven class-path resolution and the in-process JVM. Knows neither models nor Kafka."""
