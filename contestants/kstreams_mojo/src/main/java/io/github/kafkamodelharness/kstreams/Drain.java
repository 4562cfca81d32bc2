package io.github.kafkamodelharness.kstreams;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Shared by all scoring processors of the app: how many records sit in batch buffers, and whether the app
 * is shutting down (then every buffer is flushed at once, so no scored-but-unsent record is lost on close).
 */
final class Drain {
  final AtomicInteger buffered = new AtomicInteger();
  volatile boolean draining;
}
