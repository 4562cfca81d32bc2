package io.github.kafkamodelharness.kstreams;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * The wire format of harness/scoring/wire.py: header names, value encodings, and the builders of a result's and a
 * dead letter's headers (the same names in the same order as wire.result_headers and wire.dead_letter_headers).
 */
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
  static final String H_SRC = "src";
  /** Input headers a result copies, when the input has them (a production producer may send none). */
  static final String[] COPIED = {H_RID, H_INTENDED, H_SENT};

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

  /** The src header value: where the input record was read, "topic/partition/offset". */
  static String source(String topic, int partition, long offset) {
    return topic + "/" + partition + "/" + offset;
  }

  /**
   * A result's headers: rid and the two input times copied (those the input has), its source, when it was
   * consumed and scored, and by whom. Mirrors wire.result_headers.
   */
  static Headers resultHeaders(Headers in, String src, long consumedNs, long scoredNs) {
    Headers out = new RecordHeaders();
    for (String name : COPIED) {
      byte[] v = lastHeader(in, name);
      if (v != null) {
        out.add(name, v);
      }
    }
    out.add(H_SRC, src.getBytes(StandardCharsets.UTF_8));
    out.add(H_CONSUMED, ascii(consumedNs));
    out.add(H_SCORED, ascii(scoredNs));
    out.add(H_SCORER, SCORER_BYTES);
    return out;
  }

  /** A dead letter's headers: the input's own, unchanged, then why, at which stage, and where it was read. */
  static Headers deadLetterHeaders(Headers in, String reason, String stage, String src) {
    Headers out = new RecordHeaders(in.toArray());
    byte[] source = src.getBytes(StandardCharsets.UTF_8);
    out.add(H_DLQ_REASON, oneLine(reason).getBytes(StandardCharsets.UTF_8));
    out.add(H_DLQ_STAGE, stage.getBytes(StandardCharsets.US_ASCII));
    out.add(H_DLQ_SOURCE, source);
    out.add(H_SRC, source);
    return out;
  }

  /** Why a score that is not a finite number is dead-lettered (the words of harness/scoring/isolation.py). */
  static String notFinite(double score) {
    String v = Double.isNaN(score) ? "nan" : score > 0 ? "inf" : "-inf";
    return "the model returned " + v + " for this record, not a finite score";
  }

  /**
   * A result value: {"rid": "...", "score": p} (like orjson: compact, non-finite as null; without "rid" when the
   * input had none) or one f64le.
   */
  static byte[] encodeScore(byte[] rid, double score, Encoding encoding) {
    if (encoding == Encoding.F64LE) {
      return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(score).array();
    }
    StringBuilder sb = new StringBuilder(48 + (rid == null ? 0 : rid.length));
    sb.append('{');
    if (rid != null) {
      sb.append("\"rid\":\"");
      appendJsonString(sb, new String(rid, StandardCharsets.UTF_8));
      sb.append("\",");
    }
    sb.append("\"score\":");
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
