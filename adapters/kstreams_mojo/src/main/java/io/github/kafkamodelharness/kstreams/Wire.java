package io.github.kafkamodelharness.kstreams;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

/** The wire format of harness/scoring/wire.py: header names, value encodings and the result value. */
final class Wire {
  static final String H_RID = "rid";
  static final String H_INTENDED = "t_intended_ns";
  static final String H_SENT = "t_sent_ns";
  static final String H_CONSUMED = "t_consumed_ns";
  static final String H_SCORED = "t_scored_ns";
  static final String H_SCORER = "scorer";
  static final String H_DLQ_REASON = "dlq_reason";
  static final String H_DLQ_STAGE = "dlq_stage";
  static final String H_DLQ_SOURCE = "dlq_source";

  static final String SCORER = "kstreams-mojo";
  static final byte[] SCORER_BYTES = SCORER.getBytes(StandardCharsets.UTF_8);

  /** Input and result value encodings. */
  enum Encoding {
    JSON("json"),
    F64LE("f64le");

    final String wireName;

    Encoding(String wireName) {
      this.wireName = wireName;
    }

    static Encoding parse(String s) {
      for (Encoding e : values()) {
        if (e.wireName.equals(s)) {
          return e;
        }
      }
      throw new IllegalArgumentException("unknown encoding '" + s + "'; valid: json, f64le");
    }
  }

  private Wire() {}

  /** The value of the last header named {@code key}, or null. */
  static byte[] lastHeader(Headers headers, String key) {
    Header h = headers.lastHeader(key);
    return h == null ? null : h.value();
  }

  static byte[] ascii(long v) {
    return Long.toString(v).getBytes(StandardCharsets.US_ASCII);
  }

  /** A result value: {"rid": "...", "score": p} (like orjson: compact, non-finite as null) or one f64le. */
  static byte[] encodeScore(byte[] rid, double score, Encoding encoding) {
    if (encoding == Encoding.F64LE) {
      return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(score).array();
    }
    String ridText = rid == null ? "" : new String(rid, StandardCharsets.UTF_8);
    StringBuilder sb = new StringBuilder(ridText.length() + 48);
    sb.append("{\"rid\":\"");
    appendJsonString(sb, ridText);
    sb.append("\",\"score\":");
    sb.append(Double.isFinite(score) ? Double.toString(score) : "null");
    sb.append('}');
    return sb.toString().getBytes(StandardCharsets.UTF_8);
  }

  static void appendJsonString(StringBuilder sb, String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        case '\b' -> sb.append("\\b");
        case '\f' -> sb.append("\\f");
        default -> {
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
  }

  /** One line, for a header or stderr. */
  static String oneLine(String s) {
    if (s == null) {
      return "";
    }
    String t = s.replace('\r', ' ').replace('\n', ' ').strip();
    return t.length() > 500 ? t.substring(0, 500) + "..." : t;
  }

  static String describe(Throwable e) {
    String msg = e.getMessage();
    return e.getClass().getSimpleName() + (msg == null ? "" : ": " + oneLine(msg));
  }
}
