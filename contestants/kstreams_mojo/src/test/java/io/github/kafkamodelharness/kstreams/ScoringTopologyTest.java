package io.github.kafkamodelharness.kstreams;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import hex.ModelCategory;
import hex.genmodel.GenModel;
import hex.genmodel.MojoModel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The topology on Kafka Streams' TopologyTestDriver, scoring with tiny_gbm.zip (see src/test/resources). */
class ScoringTopologyTest {
  // The bundle's feature order differs from the MOJO's (f1, f2, f3) on purpose: the app maps by name.
  static final List<String> FEATURES = List.of("f3", "f1", "f2");
  static final Pattern SCORE = Pattern.compile("^\\{\"rid\":\"(.*)\",\"score\":([^}]+)\\}$");

  static String mojoPath;
  static GenModel mojo;
  static MojoScorer scorer;

  final AtomicLong clock = new AtomicLong(1_700_000_000_000_000_000L);
  final Drain drain = new Drain();
  TopologyTestDriver driver;
  TestInputTopic<byte[], byte[]> in;
  TestOutputTopic<byte[], byte[]> out;
  TestOutputTopic<byte[], byte[]> dlq;

  @BeforeAll
  static void loadMojo() throws Exception {
    mojoPath = Path.of(ScoringTopologyTest.class.getResource("/tiny_gbm.zip").toURI()).toString();
    mojo = MojoModel.load(mojoPath);
    scorer = MojoScorer.load(mojoPath, FEATURES);
  }

  @AfterEach
  void closeDriver() {
    if (driver != null) {
      driver.close();
    }
  }

  void start(Wire.Encoding encoding, ScoringTopology.Mode mode, int batchSize, long waitMs, MojoScorer s) {
    var settings = new ScoringTopology.Settings("in", "out", "in.dlq", FEATURES, encoding, mode, batchSize, waitMs);
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "test");
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "dummy:9092");
    driver =
        new TopologyTestDriver(
            ScoringTopology.build(settings, s, clock::getAndIncrement, drain), p, Instant.ofEpochSecond(0));
    in = driver.createInputTopic("in", new ByteArraySerializer(), new ByteArraySerializer());
    out = driver.createOutputTopic("out", new ByteArrayDeserializer(), new ByteArrayDeserializer());
    dlq = driver.createOutputTopic("in.dlq", new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  void start(Wire.Encoding encoding, ScoringTopology.Mode mode, int batchSize, long waitMs) {
    start(encoding, mode, batchSize, waitMs, scorer);
  }

  /** The MOJO's own prediction for (f1, f2, f3): P(class 1). */
  static double expected(double f1, double f2, double f3) {
    return mojo.score0(new double[] {f1, f2, f3, Double.NaN}, new double[mojo.getPredsSize()])[2];
  }

  static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  static String s(byte[] v) {
    return v == null ? null : new String(v, StandardCharsets.UTF_8);
  }

  static Headers inputHeaders(String rid) {
    Headers h = new RecordHeaders();
    h.add(Wire.H_RID, b(rid));
    h.add(Wire.H_INTENDED, b("1700000000000000001"));
    h.add(Wire.H_SENT, b("1700000000000000002"));
    h.add("other", b("not copied"));
    return h;
  }

  static String header(TestRecord<byte[], byte[]> r, String key) {
    var h = r.headers().lastHeader(key);
    return h == null ? null : s(h.value());
  }

  static double jsonScore(TestRecord<byte[], byte[]> r, String rid) {
    Matcher m = SCORE.matcher(s(r.value()));
    assertTrue(m.matches(), s(r.value()));
    assertEquals(rid, m.group(1));
    return Double.parseDouble(m.group(2));
  }

  static byte[] f64le(double... v) {
    ByteBuffer buf = ByteBuffer.allocate(8 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (double d : v) {
      buf.putDouble(d);
    }
    return buf.array();
  }

  @Test
  void jsonRecordIsScoredWithTheMojosPredictionAndHeadersCopied() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.PER_RECORD, 1, 1);
    in.pipeInput(new TestRecord<>(b("card-1"), b("{\"f1\": 0.5, \"f2\": -1.0, \"f3\": 2}"), inputHeaders("r1")));
    TestRecord<byte[], byte[]> r = out.readRecord();
    assertEquals("card-1", s(r.key()));
    double p = jsonScore(r, "r1");
    assertEquals(expected(0.5, -1.0, 2.0), p, 0.0);
    assertEquals(0.331913, p, 1e-6); // H2O's own predict() p1 for this row when the MOJO was made
    assertEquals("r1", header(r, Wire.H_RID));
    assertEquals("1700000000000000001", header(r, Wire.H_INTENDED));
    assertEquals("1700000000000000002", header(r, Wire.H_SENT));
    long consumed = Long.parseLong(header(r, Wire.H_CONSUMED));
    long scored = Long.parseLong(header(r, Wire.H_SCORED));
    assertEquals(1_700_000_000_000_000_000L, consumed);
    assertTrue(scored > consumed);
    assertEquals("kstreams-mojo", header(r, Wire.H_SCORER));
    assertEquals("in/0/0", header(r, Wire.H_SRC));
    assertNull(header(r, "other"));
    // the names and order of harness/scoring/wire.py's result_headers
    List<String> names = new java.util.ArrayList<>();
    r.headers().forEach(h -> names.add(h.key()));
    assertEquals(List.of("rid", "t_intended_ns", "t_sent_ns", "src", "t_consumed_ns", "t_scored_ns", "scorer"), names);
    assertTrue(dlq.isEmpty());
  }

  @Test
  void missingAndNullFeaturesAreNaN() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.PER_RECORD, 1, 1);
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f2\": 0.3, \"f3\": 0.1}"), inputHeaders("r2")));
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": null, \"f2\": 0.3, \"f3\": 0.1}"), inputHeaders("r3")));
    double nan = expected(Double.NaN, 0.3, 0.1);
    assertEquals(0.397656, nan, 1e-6); // H2O's predict() p1 for this row
    assertEquals(nan, jsonScore(out.readRecord(), "r2"), 0.0);
    assertEquals(nan, jsonScore(out.readRecord(), "r3"), 0.0);
  }

  @Test
  void f64leInAndOut() {
    start(Wire.Encoding.F64LE, ScoringTopology.Mode.PER_RECORD, 1, 1);
    // bundle order f3, f1, f2
    in.pipeInput(new TestRecord<>(b("k"), f64le(-1.0, 1.0, 1.0), inputHeaders("r4")));
    TestRecord<byte[], byte[]> r = out.readRecord();
    assertEquals(8, r.value().length);
    double p = ByteBuffer.wrap(r.value()).order(ByteOrder.LITTLE_ENDIAN).getDouble();
    assertEquals(expected(1.0, 1.0, -1.0), p, 0.0);
    assertEquals(0.664910, p, 1e-6);
    assertEquals("r4", header(r, Wire.H_RID));
    in.pipeInput(new TestRecord<>(b("k"), f64le(1.0, 2.0), inputHeaders("bad")));
    TestRecord<byte[], byte[]> d = dlq.readRecord();
    assertEquals("f64le value has 16 bytes, expected 24 (3 features)", header(d, Wire.H_DLQ_REASON));
    assertTrue(out.isEmpty());
  }

  @Test
  void poisonRecordsGoToTheDlqAndTheAppCarriesOn() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.PER_RECORD, 1, 1);
    String[][] cases = {
      {"not json", "value is not JSON"},
      {"{\"f1\": 1, \"f9\": 2}", "unknown feature 'f9'"},
      {"{\"f1\": \"x\"}", "feature 'f1' is not a number: x"},
      {"{\"f1\": true}", "feature 'f1' is not a number: true"},
      {"[1, 2, 3]", "value must be a JSON object of features, got list"},
      {"{\"f1\": 1} trailing", "value is not JSON"},
    };
    for (String[] c : cases) {
      in.pipeInput(new TestRecord<>(b("poison"), b(c[0]), inputHeaders("p")));
    }
    in.pipeInput(new TestRecord<>(b("k"), null, inputHeaders("p-null")));
    in.pipeInput(new TestRecord<>(b("good"), b("{\"f1\": 0.5, \"f2\": -1.0, \"f3\": 2}"), inputHeaders("ok")));
    for (int i = 0; i < cases.length; i++) {
      TestRecord<byte[], byte[]> d = dlq.readRecord();
      String reason = header(d, Wire.H_DLQ_REASON);
      assertTrue(reason.startsWith(cases[i][1]), cases[i][0] + " -> " + reason);
      assertEquals("decode", header(d, Wire.H_DLQ_STAGE));
      assertEquals("in/0/" + i, header(d, Wire.H_DLQ_SOURCE));
      assertEquals("in/0/" + i, header(d, Wire.H_SRC));
      assertEquals("poison", s(d.key()));
      assertEquals(cases[i][0], s(d.value()));
      assertEquals("not copied", header(d, "other")); // the input's headers are kept unchanged
      assertEquals("1700000000000000001", header(d, Wire.H_INTENDED));
    }
    TestRecord<byte[], byte[]> nul = dlq.readRecord();
    assertEquals("record has no value", header(nul, Wire.H_DLQ_REASON));
    assertNull(nul.value());
    assertTrue(dlq.isEmpty());
    TestRecord<byte[], byte[]> r = out.readRecord();
    assertEquals("good", s(r.key()));
    assertEquals(expected(0.5, -1.0, 2.0), jsonScore(r, "ok"), 0.0);
    assertTrue(out.isEmpty());
  }

  @Test
  void scoringExceptionGoesToTheDlqWithStageScore() throws Exception {
    GenModel failing =
        stub(
            f1 -> {
              if (f1 > 100) {
                throw new IllegalStateException("f1 too large");
              }
              return 0.25;
            });
    start(Wire.Encoding.JSON, ScoringTopology.Mode.BATCH, 2, 1000, new MojoScorer(failing, FEATURES));
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 1000}"), inputHeaders("boom")));
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 1}"), inputHeaders("fine")));
    TestRecord<byte[], byte[]> d = dlq.readRecord();
    assertEquals("score", header(d, Wire.H_DLQ_STAGE));
    assertEquals("scoring failed: IllegalStateException: f1 too large", header(d, Wire.H_DLQ_REASON));
    assertEquals("in/0/0", header(d, Wire.H_DLQ_SOURCE));
    assertTrue(dlq.isEmpty(), () -> header(dlq.readRecord(), Wire.H_DLQ_REASON));
    assertEquals(0.25, jsonScore(out.readRecord(), "fine"), 0.0);
  }

  @Test
  void batchFlushesWhenFull() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.BATCH, 3, 60_000);
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 1}"), inputHeaders("b1")));
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 2}"), inputHeaders("b2")));
    assertTrue(out.isEmpty());
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 3}"), inputHeaders("b3")));
    List<TestRecord<byte[], byte[]>> rs = out.readRecordsToList();
    assertEquals(3, rs.size());
    String scored = header(rs.get(0), Wire.H_SCORED);
    for (int i = 0; i < 3; i++) {
      TestRecord<byte[], byte[]> r = rs.get(i);
      assertEquals(expected(i + 1, Double.NaN, Double.NaN), jsonScore(r, "b" + (i + 1)), 0.0);
      assertEquals(scored, header(r, Wire.H_SCORED)); // one t_scored_ns per batch
      assertTrue(Long.parseLong(header(r, Wire.H_CONSUMED)) < Long.parseLong(scored));
    }
    assertTrue(Long.parseLong(header(rs.get(0), Wire.H_CONSUMED)) < Long.parseLong(header(rs.get(2), Wire.H_CONSUMED)));
  }

  @Test
  void batchFlushesOnWallClockPunctuation() {
    start(Wire.Encoding.F64LE, ScoringTopology.Mode.BATCH, 100, 50);
    in.pipeInput(new TestRecord<>(b("k1"), f64le(0.1, 0.2, 0.3), inputHeaders("w1")));
    in.pipeInput(new TestRecord<>(b("k2"), f64le(0.4, 0.5, 0.6), inputHeaders("w2")));
    driver.advanceWallClockTime(Duration.ofMillis(10));
    assertTrue(out.isEmpty());
    driver.advanceWallClockTime(Duration.ofMillis(45));
    List<TestRecord<byte[], byte[]>> rs = out.readRecordsToList();
    assertEquals(2, rs.size());
    assertEquals("k1", s(rs.get(0).key()));
    assertEquals("w2", header(rs.get(1), Wire.H_RID));
    double p = ByteBuffer.wrap(rs.get(1).value()).order(ByteOrder.LITTLE_ENDIAN).getDouble();
    assertEquals(expected(0.5, 0.6, 0.4), p, 0.0);
    // nothing buffered: the next punctuation emits nothing
    driver.advanceWallClockTime(Duration.ofMillis(100));
    assertTrue(out.isEmpty());
    // the wait counts from the oldest buffered record, not from the last punctuation
    in.pipeInput(new TestRecord<>(b("k3"), f64le(0.1, 0.2, 0.3), inputHeaders("w3")));
    driver.advanceWallClockTime(Duration.ofMillis(30));
    in.pipeInput(new TestRecord<>(b("k4"), f64le(0.1, 0.2, 0.3), inputHeaders("w4")));
    driver.advanceWallClockTime(Duration.ofMillis(10));
    assertTrue(out.isEmpty());
    driver.advanceWallClockTime(Duration.ofMillis(10));
    assertEquals(2, out.readRecordsToList().size());
    assertEquals(0, drain.buffered.get());
  }

  @Test
  void drainingFlushesTheBufferAtTheNextTick() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.BATCH, 100, 60_000);
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 1}"), inputHeaders("d1")));
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 2}"), inputHeaders("d2")));
    assertEquals(2, drain.buffered.get());
    driver.advanceWallClockTime(Duration.ofMillis(10));
    assertTrue(out.isEmpty());
    drain.draining = true;
    driver.advanceWallClockTime(Duration.ofMillis(10));
    assertEquals(2, out.readRecordsToList().size());
    assertEquals(0, drain.buffered.get());
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 3}"), inputHeaders("d3"))); // while draining: at once
    assertEquals("d3", header(out.readRecord(), Wire.H_RID));
  }

  @Test
  void resultValueEncoding() {
    assertEquals("{\"score\":0.25}", s(Wire.encodeScore(null, 0.25, Wire.Encoding.JSON))); // no rid: none written
    assertEquals("{\"rid\":\"a\\\"b\\\\c\\n\",\"score\":0.125}", s(Wire.encodeScore(b("a\"b\\c\n"), 0.125, Wire.Encoding.JSON)));
    assertEquals("{\"rid\":\"x\",\"score\":null}", s(Wire.encodeScore(b("x"), Double.NaN, Wire.Encoding.JSON)));
    assertArrayEquals(f64le(0.125), Wire.encodeScore(b("x"), 0.125, Wire.Encoding.F64LE));
  }

  @Test
  void optionsAndMojoErrorsAreUsageErrors() throws Exception {
    String[] base = {"--bootstrap", "h:1", "--input-topic", "t", "--output-topic", "u", "--application-id", "g"};
    Options o = Options.parse(concat(base, "--mojo", mojoPath, "--features", "f1,f2,f3", "--mode", "batch"));
    assertEquals("t.dlq", o.dlqTopic());
    assertEquals(ScoringTopology.Mode.BATCH, o.mode());
    assertEquals("at_least_once", o.guarantee());
    UsageException e =
        assertThrows(UsageException.class, () -> Options.parse(concat(base, "--mojo", "m", "--features", "a", "--encoding", "xml")));
    assertEquals("unknown encoding 'xml'; valid: json, f64le", e.getMessage());
    e = assertThrows(UsageException.class, () -> MojoScorer.load("/no/such/mojo.zip", FEATURES));
    assertEquals("MOJO file not found: /no/such/mojo.zip", e.getMessage());
    e = assertThrows(UsageException.class, () -> MojoScorer.load(mojoPath, List.of("f1", "f2")));
    assertNotNull(e.getMessage());
    assertTrue(e.getMessage().contains("'f3'"));
  }

  /** A binomial GenModel over (f1, f2, f3) whose P(class 1) is f(f1), for faults the real MOJO never shows. */
  static GenModel stub(java.util.function.DoubleUnaryOperator f) {
    return new GenModel(new String[] {"f1", "f2", "f3", "y"}, new String[][] {null, null, null, {"0", "1"}}, "y") {
      @Override
      public ModelCategory getModelCategory() {
        return ModelCategory.Binomial;
      }

      @Override
      public boolean isSupervised() {
        return true;
      }

      @Override
      public int nfeatures() {
        return 3;
      }

      @Override
      public int getPredsSize() {
        return 3;
      }

      @Override
      public String getUUID() {
        return "stub";
      }

      @Override
      public double[] score0(double[] row, double[] preds) {
        preds[2] = f.applyAsDouble(row[0]);
        return preds;
      }
    };
  }

  @Test
  void recordWithoutHeadersIsScoredAndCarriesItsSource() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.PER_RECORD, 1, 1);
    in.pipeInput(new TestRecord<>(b("k"), b("{\"f1\": 0.5, \"f2\": -1.0, \"f3\": 2}"), new RecordHeaders()));
    TestRecord<byte[], byte[]> r = out.readRecord();
    assertEquals("{\"score\":" + expected(0.5, -1.0, 2.0) + "}", s(r.value()));
    List<String> names = new java.util.ArrayList<>();
    r.headers().forEach(h -> names.add(h.key()));
    assertEquals(List.of("src", "t_consumed_ns", "t_scored_ns", "scorer"), names);
    assertEquals("in/0/0", header(r, Wire.H_SRC));
  }

  @Test
  void nonFiniteScoresAndInfiniteFeaturesAreDeadLettered() throws Exception {
    MojoScorer odd = new MojoScorer(stub(f1 -> f1 > 100 ? Double.NaN : f1 < -100 ? Double.POSITIVE_INFINITY : 0.25), FEATURES);
    for (ScoringTopology.Mode mode : ScoringTopology.Mode.values()) {
      start(Wire.Encoding.F64LE, mode, 1, 1000, odd);
      in.pipeInput(new TestRecord<>(b("k"), f64le(0, 1000, 0), inputHeaders("nan"))); // bundle order f3, f1, f2
      in.pipeInput(new TestRecord<>(b("k"), f64le(0, -1000, 0), inputHeaders("inf")));
      in.pipeInput(new TestRecord<>(b("k"), f64le(0, Double.NEGATIVE_INFINITY, 0), inputHeaders("bad")));
      in.pipeInput(new TestRecord<>(b("k"), f64le(0, 1, 0), inputHeaders("ok")));
      TestRecord<byte[], byte[]> d = dlq.readRecord();
      assertEquals("score", header(d, Wire.H_DLQ_STAGE));
      assertEquals("the model returned nan for this record, not a finite score", header(d, Wire.H_DLQ_REASON));
      d = dlq.readRecord();
      assertEquals("the model returned inf for this record, not a finite score", header(d, Wire.H_DLQ_REASON));
      d = dlq.readRecord();
      assertEquals("decode", header(d, Wire.H_DLQ_STAGE));
      assertEquals("feature 'f1' is infinite: use NaN for missing", header(d, Wire.H_DLQ_REASON));
      assertTrue(dlq.isEmpty());
      assertEquals("ok", header(out.readRecord(), Wire.H_RID));
      assertTrue(out.isEmpty());
      driver.close();
      driver = null;
    }
  }

  @Test
  void batchBufferIsInTheStoreUntilItsResultsAreForwarded() {
    start(Wire.Encoding.JSON, ScoringTopology.Mode.BATCH, 100, 50);
    var store = driver.<byte[], byte[]>getKeyValueStore(PendingRecords.STORE);
    in.pipeInput(new TestRecord<>(b("k1"), b("{\"f1\": 1}"), inputHeaders("s1")));
    in.pipeInput(new TestRecord<>(b("k2"), b("{\"f1\": 2}"), inputHeaders("s2")));
    assertTrue(out.isEmpty());
    assertEquals(2, store.approximateNumEntries()); // committed offsets are covered by the store's changelog
    assertEquals("in/0/1", PendingRecords.decode(store.get(PendingRecords.key(1))).source());
    driver.advanceWallClockTime(Duration.ofMillis(60));
    assertEquals(2, out.readRecordsToList().size());
    assertEquals(0, store.approximateNumEntries());
  }

  @Test
  void recordsLeftInTheStoreByACrashAreRestoredAndScored() {
    var ctx = new org.apache.kafka.streams.processor.api.MockProcessorContext<byte[], byte[]>();
    ctx.setCurrentSystemTimeMs(1_000);
    org.apache.kafka.streams.state.KeyValueStore<byte[], byte[]> store =
        PendingRecords.storeBuilder().withLoggingDisabled().build();
    store.init(ctx.getStateStoreContext(), store);
    ctx.addStateStore(store);
    for (long off : new long[] {7, 5}) { // stored out of order: restored in offset order
      var input = new org.apache.kafka.streams.processor.api.Record<>(
          b("k" + off), b("{\"f1\": " + off + "}"), 42L, inputHeaders("lost-" + off));
      store.put(PendingRecords.key(off), PendingRecords.encode(new PendingRecords.Entry(input, 100L + off, "in/0/" + off)));
    }
    var settings = new ScoringTopology.Settings(
        "in", "out", "in.dlq", FEATURES, Wire.Encoding.JSON, ScoringTopology.Mode.BATCH, 100, 10);
    Drain d = new Drain();
    ScoringProcessor p = new ScoringProcessor(settings, scorer, clock::getAndIncrement, d);
    p.init(ctx);
    assertEquals(2, d.buffered.get());
    assertTrue(ctx.forwarded().isEmpty());
    ctx.scheduledPunctuators().get(0).getPunctuator().punctuate(Long.MAX_VALUE / 2);
    var forwarded = ctx.forwarded();
    assertEquals(2, forwarded.size());
    var first = forwarded.get(0).record();
    assertEquals("k5", s(first.key()));
    assertEquals("in/0/5", s(first.headers().lastHeader(Wire.H_SRC).value()));
    assertEquals("105", s(first.headers().lastHeader(Wire.H_CONSUMED).value()));
    Matcher m = SCORE.matcher(s(first.value()));
    assertTrue(m.matches());
    assertEquals("lost-5", m.group(1));
    assertEquals(expected(5, Double.NaN, Double.NaN), Double.parseDouble(m.group(2)), 0.0);
    assertEquals(0, store.approximateNumEntries());
    assertEquals(0, d.buffered.get());
  }

  @Test
  void pendingRecordRoundTrip() {
    Headers h = inputHeaders("r");
    h.add("empty", null);
    var r = new org.apache.kafka.streams.processor.api.Record<byte[], byte[]>(null, b("v"), 9L, h);
    PendingRecords.Entry e = PendingRecords.decode(PendingRecords.encode(new PendingRecords.Entry(r, 77L, "t/3/9")));
    assertNull(e.input().key());
    assertEquals("v", s(e.input().value()));
    assertEquals(9L, e.input().timestamp());
    assertEquals(77L, e.consumedNs());
    assertEquals("t/3/9", e.source());
    assertArrayEquals(h.toArray(), e.input().headers().toArray());
  }

  static String[] concat(String[] a, String... b) {
    String[] r = new String[a.length + b.length];
    System.arraycopy(a, 0, r, 0, a.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }
}
