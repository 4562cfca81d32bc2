package io.github.kafkamodelharness.kstreams;

/** A record's value does not match the encoding or the model's features (dlq_stage "decode"). */
final class DecodeException extends Exception {
  private static final long serialVersionUID = 1L;

  DecodeException(String message) {
    super(message, null, false, false);
  }
}
