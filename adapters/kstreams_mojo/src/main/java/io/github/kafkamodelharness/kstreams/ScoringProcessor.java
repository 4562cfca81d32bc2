package io.github.kafkamodelharness.kstreams;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;

/**
 * Decodes, scores with the MOJO and forwards a result record per input record (to the results sink), or the
 * input unchanged plus dlq_* headers (to the DLQ sink). In batch mode, decoded rows wait in a buffer that is
 * scored when it holds batchSize rows, or when its oldest row has waited batchMaxWaitMs (checked by a
 * wall-clock punctuator every tickMs), or at once while the app drains for shutdown.
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
  private long firstBufferedAtMs;

  private record Pending(Record<byte[], byte[]> input, double[] row, long consumedNs, String source) {}

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
      context.schedule(
          Duration.ofMillis(tickMs(settings.batchMaxWaitMs())), PunctuationType.WALL_CLOCK_TIME, this::punctuate);
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
      forwardResult(input, score, consumedNs, clock.getAsLong());
      return;
    }
    if (buffer.isEmpty()) {
      firstBufferedAtMs = context.currentSystemTimeMs();
    }
    buffer.add(new Pending(input, target, consumedNs, source));
    drain.buffered.incrementAndGet();
    if (buffer.size() >= settings.batchSize() || drain.draining) {
      flush();
    }
  }

  /** Scores the buffer as one batch (one t_scored_ns for all) and forwards the results. */
  void flush() {
    int n = buffer.size();
    if (n == 0) {
      return;
    }
    double[] scores = new double[n];
    String[] errors = new String[n];
    for (int i = 0; i < n; i++) {
      try {
        scores[i] = scorer.score(buffer.get(i).row(), scratch);
      } catch (RuntimeException e) {
        errors[i] = "scoring failed: " + Wire.describe(e);
      }
    }
    long scoredNs = clock.getAsLong();
    for (int i = 0; i < n; i++) {
      Pending p = buffer.get(i);
      if (errors[i] != null) {
        deadLetter(p.input(), errors[i], "score", p.source());
      } else {
        forwardResult(p.input(), scores[i], p.consumedNs(), scoredNs);
      }
    }
    buffer.clear();
    drain.buffered.addAndGet(-n);
  }

  @Override
  public void close() {
    int n = buffer.size();
    if (n > 0) {
      // Kafka Streams commits a task's offsets before it closes its processors; these are lost.
      System.err.println("kstreams-mojo: " + n + " buffered records dropped at close (task revoked or closed)");
      drain.buffered.addAndGet(-n);
      buffer.clear();
    }
  }

  private String source() {
    return context
        .recordMetadata()
        .map((RecordMetadata m) -> m.topic() + "/" + m.partition() + "/" + m.offset())
        .orElse(settings.inputTopic() + "/-1/-1");
  }

  private void forwardResult(Record<byte[], byte[]> input, double score, long consumedNs, long scoredNs) {
    Headers in = input.headers();
    byte[] rid = Wire.lastHeader(in, Wire.H_RID);
    Headers out = new RecordHeaders();
    copy(in, out, Wire.H_RID);
    copy(in, out, Wire.H_INTENDED);
    copy(in, out, Wire.H_SENT);
    out.add(Wire.H_CONSUMED, Wire.ascii(consumedNs));
    out.add(Wire.H_SCORED, Wire.ascii(scoredNs));
    out.add(Wire.H_SCORER, Wire.SCORER_BYTES);
    byte[] value = Wire.encodeScore(rid, score, settings.encoding());
    context.forward(new Record<>(input.key(), value, input.timestamp(), out), ScoringTopology.RESULTS_SINK);
  }

  private void deadLetter(Record<byte[], byte[]> input, String reason, String stage, String source) {
    Headers out = new RecordHeaders(input.headers().toArray());
    out.add(Wire.H_DLQ_REASON, Wire.oneLine(reason).getBytes(StandardCharsets.UTF_8));
    out.add(Wire.H_DLQ_STAGE, stage.getBytes(StandardCharsets.US_ASCII));
    out.add(Wire.H_DLQ_SOURCE, source.getBytes(StandardCharsets.UTF_8));
    context.forward(
        new Record<>(input.key(), input.value(), input.timestamp(), out), ScoringTopology.DLQ_SINK);
  }

  private static void copy(Headers from, Headers to, String key) {
    byte[] v = Wire.lastHeader(from, key);
    if (v != null) {
      to.add(key, v);
    }
  }
}
