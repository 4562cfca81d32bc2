package io.github.kafkamodelharness.kstreams;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import sun.misc.Signal;

/**
 * Entry point. Exit codes: 0 after a clean shutdown on SIGTERM/SIGINT; 1 when the stream failed or did not
 * close in time; 2 for a problem the user can fix (bad arguments, missing or unusable MOJO, bad config).
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    if (args.length == 1 && (args[0].equals("--help") || args[0].equals("-h"))) {
      System.out.println(Options.USAGE);
      System.exit(0);
    }
    int code;
    try {
      code = run(args);
    } catch (UsageException e) {
      System.err.println("kstreams-mojo: " + e.getMessage());
      code = 2;
    }
    System.out.flush();
    System.err.flush();
    System.exit(code);
  }

  static int run(String[] args) throws UsageException {
    Options o = Options.parse(args);
    MojoScorer scorer = MojoScorer.load(o.mojo(), o.features());
    Properties props = streamsConfig(o);
    Path stateDir = null;
    if (!props.containsKey(StreamsConfig.STATE_DIR_CONFIG)) {
      try {
        stateDir = Files.createTempDirectory("kstreams-mojo-");
      } catch (IOException e) {
        throw new UsageException("cannot create a state directory: " + Wire.describe(e));
      }
      props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    }
    try {
      return runStreams(o, scorer, props);
    } finally {
      deleteTree(stateDir);
    }
  }

  static Properties streamsConfig(Options o) throws UsageException {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.applicationId());
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap());
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, o.guarantee());
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.toString(o.threads()));
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class.getName());
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class.getName());
    // Kafka Streams sets the producer's linger.ms to 100; a latency benchmark wants librdkafka's 5 ms.
    p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), "5");
    if (o.mode() == ScoringTopology.Mode.BATCH) {
      // Wall-clock punctuation runs between polls: poll no longer than the punctuation tick.
      p.put(StreamsConfig.POLL_MS_CONFIG, Long.toString(ScoringProcessor.tickMs(o.batchMaxWaitMs())));
    }
    if (o.clientConfig() != null) {
      Path f = Path.of(o.clientConfig());
      Properties extra = new Properties();
      try (InputStream in = Files.newInputStream(f)) {
        extra.load(in);
      } catch (IOException | IllegalArgumentException e) {
        throw new UsageException("cannot read --client-config " + f + ": " + Wire.describe(e));
      }
      p.putAll(extra);
    }
    return p;
  }

  private static int runStreams(Options o, MojoScorer scorer, Properties props) throws UsageException {
    Drain drain = new Drain();
    Topology topology = ScoringTopology.build(o.settings(), scorer, new EpochClock(), drain);
    KafkaStreams streams;
    try {
      streams = new KafkaStreams(topology, props);
    } catch (RuntimeException e) {
      throw new UsageException("bad Kafka Streams configuration: " + Wire.describe(e));
    }
    CountDownLatch stop = new CountDownLatch(1);
    AtomicBoolean ready = new AtomicBoolean();
    AtomicBoolean stopping = new AtomicBoolean();
    AtomicReference<String> failure = new AtomicReference<>();
    streams.setUncaughtExceptionHandler(
        e -> {
          failure.compareAndSet(null, "stream thread failed: " + Wire.describe(rootCause(e)));
          stop.countDown();
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (newState, oldState) -> {
          if (newState == KafkaStreams.State.RUNNING && ready.compareAndSet(false, true)) {
            System.out.println("READY");
            System.out.flush();
          } else if (newState == KafkaStreams.State.ERROR
              || (newState == KafkaStreams.State.PENDING_SHUTDOWN && !stopping.get())) {
            failure.compareAndSet(null, "stream stopped unexpectedly (state " + newState + ")");
            stop.countDown();
          }
        });
    Signal.handle(new Signal("TERM"), sig -> stop.countDown());
    Signal.handle(new Signal("INT"), sig -> stop.countDown());
    System.err.println(
        "kstreams-mojo: " + scorer.description() + "; " + o.inputTopic() + " -> " + o.outputTopic()
            + " (dlq " + o.dlqTopic() + "), " + o.mode().cliName + ", " + o.encoding().wireName + ", "
            + o.guarantee());
    streams.start();
    try {
      stop.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    stopping.set(true);
    if (failure.get() == null) {
      drainBuffers(drain, o.batchMaxWaitMs());
    }
    boolean closed =
        streams.close(new KafkaStreams.CloseOptions().timeout(Duration.ofMillis(o.closeTimeoutMs())).leaveGroup(true));
    if (failure.get() != null) {
      System.err.println("kstreams-mojo: " + failure.get());
      return 1;
    }
    if (!closed) {
      System.err.println("kstreams-mojo: Kafka Streams did not close within " + o.closeTimeoutMs() + " ms");
      return 1;
    }
    return 0;
  }

  /** Batch mode: ask every processor to flush its buffer, and wait (bounded) until they have. */
  private static void drainBuffers(Drain drain, long batchMaxWaitMs) {
    drain.draining = true;
    long deadline = System.nanoTime() + Duration.ofMillis(ScoringProcessor.tickMs(batchMaxWaitMs) + 2_000).toNanos();
    while (drain.buffered.get() > 0 && System.nanoTime() < deadline) {
      try {
        Thread.sleep(2);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static Throwable rootCause(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t;
  }

  private static void deleteTree(Path dir) {
    if (dir == null) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      // best effort: a temporary directory
    }
  }
}
