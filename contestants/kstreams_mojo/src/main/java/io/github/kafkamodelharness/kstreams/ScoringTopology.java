package io.github.kafkamodelharness.kstreams;

import java.util.List;
import java.util.function.LongSupplier;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.Topology;

/** input topic → score (per record, or in batches) → output topic, with bad records to the DLQ topic. */
final class ScoringTopology {
  static final String SOURCE = "input";
  static final String PROCESSOR = "score";
  static final String RESULTS_SINK = "results";
  static final String DLQ_SINK = "dlq";

  /** Per-record scoring (the reference architecture) or a buffer of up to N records / M ms. */
  enum Mode {
    PER_RECORD("per-record"),
    BATCH("batch");

    final String cliName;

    Mode(String cliName) {
      this.cliName = cliName;
    }

    static Mode parse(String s) {
      for (Mode m : values()) {
        if (m.cliName.equals(s)) {
          return m;
        }
      }
      throw new IllegalArgumentException("unknown mode '" + s + "'; valid: per-record, batch");
    }
  }

  /** What the scoring processor needs to know. */
  record Settings(
      String inputTopic,
      String outputTopic,
      String dlqTopic,
      List<String> featureNames,
      Wire.Encoding encoding,
      Mode mode,
      int batchSize,
      long batchMaxWaitMs) {}

  private ScoringTopology() {}

  static Topology build(Settings s, MojoScorer scorer, LongSupplier clock, Drain drain) {
    Topology t = new Topology();
    t.addSource(SOURCE, new ByteArrayDeserializer(), new ByteArrayDeserializer(), s.inputTopic());
    t.addProcessor(PROCESSOR, () -> new ScoringProcessor(s, scorer, clock, drain), SOURCE);
    t.addSink(RESULTS_SINK, s.outputTopic(), new ByteArraySerializer(), new ByteArraySerializer(), PROCESSOR);
    t.addSink(DLQ_SINK, s.dlqTopic(), new ByteArraySerializer(), new ByteArraySerializer(), PROCESSOR);
    if (s.mode() == Mode.BATCH) {
      t.addStateStore(PendingRecords.storeBuilder(), PROCESSOR); // batch mode's buffer survives a crash
    }
    return t;
  }
}
