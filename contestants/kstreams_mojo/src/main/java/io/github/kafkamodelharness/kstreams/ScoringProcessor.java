package io.github.kafkamodelharness.kstreams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Decodes, scores with the MOJO and forwards a result record per input record (to the results sink), or the
 * input unchanged plus dlq_* headers (to the DLQ sink). A score that is not a finite number is dead-lettered at
 * stage "score", as the Python loop does.
 *
 * <p>In batch mode, decoded rows wait in a buffer that is scored when it holds batchSize rows, or when its oldest
 * row has waited batchMaxWaitMs (checked by a wall-clock punctuator every tickMs), or at once while the app drains
 * for shutdown. Every buffered record is also in the {@link PendingRecords} store until it is forwarded, so a crash
 * (or a rebalance) loses nothing: the next owner of the partition restores the store and scores what it holds.
 */
final class ScoringProcessor implements Processor<byte[], byte[], byte[], byte[]> {
  private final ScoringTopology.Settings settings;
  private final MojoScorer scorer;
  private final LongSupplier clock;
  private final Drain drain;
  private final FeatureDecoder decoder;
  private final double[][] scratch;
  private final double[] row;
  private final List<Pending> buffer = new ArrayList<>();
  private ProcessorContext<byte[], byte[]> context;
  private KeyValueStore<byte[], byte[]> pending;
  private long firstBufferedAtMs;

  /** A buffered record: its row, its store key, or why it cannot be scored (then it is dead-lettered). */
  private record Pending(PendingRecords.Entry entry, double[] row, byte[] storeKey, String decodeError) {}

  ScoringProcessor(ScoringTopology.Settings settings, MojoScorer scorer, LongSupplier clock, Drain drain) {
    this.settings = settings;
    this.scorer = scorer;
    this.clock = clock;
    this.drain = drain;
    this.decoder = new FeatureDecoder(settings.featureNames(), settings.encoding());
    this.scratch = scorer.newScratch();
    this.row = new double[decoder.size()];
  }

  @Override
  public void init(ProcessorContext<byte[], byte[]> context) {
    this.context = context;
    if (settings.mode() == ScoringTopology.Mode.BATCH) {
      pending = context.getStateStore(PendingRecords.STORE);
      restore();
      context.schedule(
          Duration.ofMillis(tickMs(settings.batchMaxWaitMs())), PunctuationType.WALL_CLOCK_TIME, this::punctuate);
    }
  }

  /** Re-buffers the records a crashed (or moved) predecessor left in the store; the punctuator scores them. */
  private void restore() {
    try (KeyValueIterator<byte[], byte[]> it = pending.all()) {
      while (it.hasNext()) {
        KeyValue<byte[], byte[]> kv = it.next();
        PendingRecords.Entry e = PendingRecords.decode(kv.value);
        double[] target = new double[decoder.size()];
        String error = null;
        try {
          decoder.decodeInto(e.input().value(), target);
        } catch (DecodeException ex) { // it decoded when it was stored: only if --features changed since
          error = ex.getMessage();
        }
        buffer(new Pending(e, target, kv.key, error));
      }
    }
    if (!buffer.isEmpty()) {
      System.err.println("kstreams-mojo: " + buffer.size() + " buffered records restored from the store");
    }
  }

  /** How often the buffer's age is checked: a fraction of the batch wait, at most 10 ms (for a prompt drain). */
  static long tickMs(long batchMaxWaitMs) {
    return Math.max(1, Math.min(10, batchMaxWaitMs / 2));
  }

  private void punctuate(long nowMs) {
    if (!buffer.isEmpty() && (drain.draining || nowMs - firstBufferedAtMs >= settings.batchMaxWaitMs())) {
      flush();
    }
  }

  @Override
  public void process(Record<byte[], byte[]> input) {
    long consumedNs = clock.getAsLong();
    String source = source();
    boolean batch = settings.mode() == ScoringTopology.Mode.BATCH;
    double[] target = batch ? new double[decoder.size()] : row;
    try {
      decoder.decodeInto(input.value(), target);
    } catch (DecodeException e) {
      deadLetter(input, e.getMessage(), "decode", source);
      return;
    }
    if (!batch) {
      double score;
      try {
        score = scorer.score(target, scratch);
      } catch (RuntimeException e) {
        deadLetter(input, "scoring failed: " + Wire.describe(e), "score", source);
        return;
      }
      forward(input, score, consumedNs, clock.getAsLong(), source);
      return;
    }
    PendingRecords.Entry entry = new PendingRecords.Entry(input, consumedNs, source);
    byte[] storeKey = PendingRecords.key(offset());
    pending.put(storeKey, PendingRecords.encode(entry));
    buffer(new Pending(entry, target, storeKey, null));
    if (buffer.size() >= settings.batchSize() || drain.draining) {
      flush();
    }
  }

  private void buffer(Pending p) {
    if (buffer.isEmpty()) {
      firstBufferedAtMs = context.currentSystemTimeMs();
    }
    buffer.add(p);
    drain.buffered.incrementAndGet();
  }

  /** Scores the buffer as one batch (one t_scored_ns for all), forwards the outputs, empties the store. */
  void flush() {
    int n = buffer.size();
    if (n == 0) {
      return;
    }
    double[] scores = new double[n];
    String[] errors = new String[n];
    for (int i = 0; i < n; i++) {
      Pending p = buffer.get(i);
      if (p.decodeError() != null) {
        continue;
      }
      try {
        scores[i] = scorer.score(p.row(), scratch);
      } catch (RuntimeException e) {
        errors[i] = "scoring failed: " + Wire.describe(e);
      }
    }
    long scoredNs = clock.getAsLong();
    for (int i = 0; i < n; i++) {
      Pending p = buffer.get(i);
      PendingRecords.Entry e = p.entry();
      if (p.decodeError() != null) {
        deadLetter(e.input(), p.decodeError(), "decode", e.source());
      } else if (errors[i] != null) {
        deadLetter(e.input(), errors[i], "score", e.source());
      } else {
        forward(e.input(), scores[i], e.consumedNs(), scoredNs, e.source());
      }
      pending.delete(p.storeKey());
    }
    buffer.clear();
    drain.buffered.addAndGet(-n);
  }

  @Override
  public void close() {
    int n = buffer.size();
    if (n > 0) {
      // Not lost: they stay in the store (and its changelog); the partition's next owner restores and scores them.
      System.err.println("kstreams-mojo: " + n + " buffered records left in the store at close (task revoked)");
      drain.buffered.addAndGet(-n);
      buffer.clear();
    }
  }

  private String source() {
    return context
        .recordMetadata()
        .map((RecordMetadata m) -> Wire.source(m.topic(), m.partition(), m.offset()))
        .orElse(Wire.source(settings.inputTopic(), -1, -1));
  }

  private long offset() {
    return context.recordMetadata().map(RecordMetadata::offset).orElse(-1L);
  }

  /** A result, or a dead letter when the score is not a finite number. */
  private void forward(Record<byte[], byte[]> input, double score, long consumedNs, long scoredNs, String src) {
    if (!Double.isFinite(score)) {
      deadLetter(input, Wire.notFinite(score), "score", src);
      return;
    }
    byte[] rid = Wire.lastHeader(input.headers(), Wire.H_RID);
    byte[] value = Wire.encodeScore(rid, score, settings.encoding());
    var out = Wire.resultHeaders(input.headers(), src, consumedNs, scoredNs);
    context.forward(new Record<>(input.key(), value, input.timestamp(), out), ScoringTopology.RESULTS_SINK);
  }

  private void deadLetter(Record<byte[], byte[]> input, String reason, String stage, String source) {
    var out = Wire.deadLetterHeaders(input.headers(), reason, stage, source);
    context.forward(
        new Record<>(input.key(), input.value(), input.timestamp(), out), ScoringTopology.DLQ_SINK);
  }
}
