package io.github.kafkamodelharness.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The durable copy of batch mode's buffer: a change-logged in-memory store holding every record that is buffered
 * but not yet scored, keyed by its input offset.
 *
 * <p>Kafka Streams commits the offset of a record once {@code process} returns, while the record may still wait in
 * the buffer; a crash then lost it. Now the record is put in this store in {@code process} and deleted when its
 * result or dead letter is forwarded. The store's changelog is flushed before every commit (in the same
 * transaction under exactly_once_v2), so a committed offset's record is either forwarded or in the changelog; the
 * partition's next owner restores the store and scores what it holds.
 */
final class PendingRecords {
  static final String STORE = "pending";
  private static final int VERSION = 1;

  /** A buffered record as stored: the input, when it was consumed, where it was read. */
  record Entry(Record<byte[], byte[]> input, long consumedNs, String source) {}

  private PendingRecords() {}

  static StoreBuilder<KeyValueStore<byte[], byte[]>> storeBuilder() {
    // logging (the changelog topic) is on by default; no caching: a put must reach the changelog before a commit
    return Stores.keyValueStoreBuilder(Stores.inMemoryKeyValueStore(STORE), Serdes.ByteArray(), Serdes.ByteArray());
  }

  /** The store key of an input offset: 8 bytes big-endian, so the store iterates in offset order. */
  static byte[] key(long offset) {
    return ByteBuffer.allocate(8).putLong(offset).array();
  }

  static byte[] encode(Entry e) {
    Record<byte[], byte[]> r = e.input();
    Header[] headers = r.headers().toArray();
    byte[] source = e.source().getBytes(StandardCharsets.UTF_8);
    int size = 4 + 8 + 8 + len(r.key()) + len(r.value()) + 4 + len(source);
    byte[][] names = new byte[headers.length][];
    for (int i = 0; i < headers.length; i++) {
      names[i] = headers[i].key().getBytes(StandardCharsets.UTF_8);
      size += len(names[i]) + len(headers[i].value());
    }
    ByteBuffer b = ByteBuffer.allocate(size);
    b.putInt(VERSION).putLong(r.timestamp()).putLong(e.consumedNs());
    put(b, r.key());
    put(b, r.value());
    put(b, source);
    b.putInt(headers.length);
    for (int i = 0; i < headers.length; i++) {
      put(b, names[i]);
      put(b, headers[i].value());
    }
    return b.array();
  }

  static Entry decode(byte[] data) {
    ByteBuffer b = ByteBuffer.wrap(data);
    int version = b.getInt();
    if (version != VERSION) {
      throw new IllegalStateException("pending record of unknown version " + version);
    }
    long timestamp = b.getLong();
    long consumedNs = b.getLong();
    byte[] key = get(b);
    byte[] value = get(b);
    String source = new String(get(b), StandardCharsets.UTF_8);
    Headers headers = new RecordHeaders();
    int n = b.getInt();
    for (int i = 0; i < n; i++) {
      String name = new String(get(b), StandardCharsets.UTF_8);
      headers.add(name, get(b));
    }
    return new Entry(new Record<>(key, value, timestamp, headers), consumedNs, source);
  }

  private static int len(byte[] v) {
    return 4 + (v == null ? 0 : v.length);
  }

  private static void put(ByteBuffer b, byte[] v) {
    if (v == null) {
      b.putInt(-1);
    } else {
      b.putInt(v.length).put(v);
    }
  }

  private static byte[] get(ByteBuffer b) {
    int n = b.getInt();
    if (n < 0) {
      return null;
    }
    byte[] v = new byte[n];
    b.get(v);
    return v;
  }
}
