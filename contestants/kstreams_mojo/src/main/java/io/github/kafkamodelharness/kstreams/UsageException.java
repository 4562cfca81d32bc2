package io.github.kafkamodelharness.kstreams;

/** A problem the user can act on (bad arguments, missing MOJO): one line on stderr, exit code 2. */
final class UsageException extends Exception {
  private static final long serialVersionUID = 1L;

  UsageException(String message) {
    super(message, null, false, false);
  }
}
