package io.github.kafkamodelharness.kstreams;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The command line: {@code --name value} (or {@code --name=value}) pairs. */
record Options(
    String bootstrap,
    String inputTopic,
    String outputTopic,
    String dlqTopic,
    String applicationId,
    String mojo,
    List<String> features,
    Wire.Encoding encoding,
    ScoringTopology.Mode mode,
    int batchSize,
    long batchMaxWaitMs,
    String guarantee,
    String clientConfig,
    int threads,
    long closeTimeoutMs) {

  static final String USAGE =
      String.join(
          "\n",
          "usage: java -jar kstreams-mojo.jar --bootstrap HOST:PORT --input-topic T --output-topic U",
          "         [--dlq-topic D (default T.dlq)] --application-id G --mojo PATH --features f1,f2,...",
          "         [--encoding json|f64le] [--mode per-record|batch] [--batch-size N] [--batch-max-wait-ms M]",
          "         [--guarantee at_least_once|exactly_once_v2] [--client-config FILE] [--threads N]",
          "         [--close-timeout-ms MS]",
          "Prints READY when the stream is RUNNING; SIGTERM closes it and exits 0.");

  private static final Set<String> KNOWN =
      Set.of(
          "bootstrap", "input-topic", "output-topic", "dlq-topic", "application-id", "mojo", "features",
          "encoding", "mode", "batch-size", "batch-max-wait-ms", "guarantee", "client-config", "threads",
          "close-timeout-ms");
  private static final Set<String> GUARANTEES = Set.of("at_least_once", "exactly_once_v2");

  static Options parse(String[] args) throws UsageException {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--")) {
        throw new UsageException("unexpected argument '" + a + "' (options are --name value)");
      }
      String name = a.substring(2);
      String value;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.substring(eq + 1);
        name = name.substring(0, eq);
      } else {
        if (i + 1 >= args.length) {
          throw new UsageException("option --" + name + " needs a value");
        }
        value = args[++i];
      }
      if (!KNOWN.contains(name)) {
        throw new UsageException("unknown option --" + name + "; valid: --" + String.join(", --", sorted(KNOWN)));
      }
      if (m.put(name, value) != null) {
        throw new UsageException("option --" + name + " given twice");
      }
    }
    for (String name : List.of("bootstrap", "input-topic", "output-topic", "application-id", "mojo", "features")) {
      required(m, name);
    }
    String input = required(m, "input-topic");
    List<String> features = new ArrayList<>();
    for (String f : required(m, "features").split(",", -1)) {
      String t = f.strip();
      if (t.isEmpty()) {
        throw new UsageException("--features has an empty name: '" + m.get("features") + "'");
      }
      features.add(t);
    }
    if (new HashSet<>(features).size() != features.size()) {
      throw new UsageException("--features names a feature twice");
    }
    Wire.Encoding encoding;
    ScoringTopology.Mode mode;
    try {
      encoding = Wire.Encoding.parse(m.getOrDefault("encoding", "json"));
      mode = ScoringTopology.Mode.parse(m.getOrDefault("mode", "per-record"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    String guarantee = m.getOrDefault("guarantee", "at_least_once");
    if (!GUARANTEES.contains(guarantee)) {
      throw new UsageException("unknown guarantee '" + guarantee + "'; valid: at_least_once, exactly_once_v2");
    }
    return new Options(
        required(m, "bootstrap"),
        input,
        required(m, "output-topic"),
        m.getOrDefault("dlq-topic", input + ".dlq"),
        required(m, "application-id"),
        required(m, "mojo"),
        List.copyOf(features),
        encoding,
        mode,
        (int) positive(m, "batch-size", 64),
        positive(m, "batch-max-wait-ms", 10),
        guarantee,
        m.get("client-config"),
        (int) positive(m, "threads", 1),
        positive(m, "close-timeout-ms", 10_000));
  }

  ScoringTopology.Settings settings() {
    return new ScoringTopology.Settings(
        inputTopic, outputTopic, dlqTopic, features, encoding, mode, batchSize, batchMaxWaitMs);
  }

  private static String required(Map<String, String> m, String name) throws UsageException {
    String v = m.get(name);
    if (v == null || v.isBlank()) {
      throw new UsageException("missing required option --" + name);
    }
    return v;
  }

  private static long positive(Map<String, String> m, String name, long dflt) throws UsageException {
    String v = m.get(name);
    if (v == null) {
      return dflt;
    }
    long x;
    try {
      x = Long.parseLong(v.strip());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be an integer, got '" + v + "'");
    }
    if (x < 1 || x > Integer.MAX_VALUE) {
      throw new UsageException("--" + name + " must be between 1 and " + Integer.MAX_VALUE + ", got " + x);
    }
    return x;
  }

  private static List<String> sorted(Set<String> s) {
    List<String> l = new ArrayList<>(s);
    l.sort(null);
    return l;
  }
}
