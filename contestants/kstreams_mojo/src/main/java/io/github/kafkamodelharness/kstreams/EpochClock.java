package io.github.kafkamodelharness.kstreams;

import java.time.Instant;
import java.util.function.LongSupplier;

/**
 * Nanoseconds since the Unix epoch, like Python's time.time_ns(): the wall clock read once at start, then
 * advanced by System.nanoTime() (monotonic, cheap, ns resolution).
 */
final class EpochClock implements LongSupplier {
  private final long baseEpochNs;
  private final long baseNano;

  EpochClock() {
    Instant now = Instant.now();
    baseNano = System.nanoTime();
    baseEpochNs = now.getEpochSecond() * 1_000_000_000L + now.getNano();
  }

  @Override
  public long getAsLong() {
    return baseEpochNs + (System.nanoTime() - baseNano);
  }
}
