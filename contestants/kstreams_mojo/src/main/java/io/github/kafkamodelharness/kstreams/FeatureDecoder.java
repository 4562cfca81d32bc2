package io.github.kafkamodelharness.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Decodes input values into a row in the bundle's feature order, with the rules of wire.FeatureCodec. */
final class FeatureDecoder {
  private static final JsonFactory JSON = new JsonFactory();

  private final Wire.Encoding encoding;
  private final Map<String, Integer> index = new HashMap<>();
  private final String[] names;
  private final int n;

  FeatureDecoder(List<String> featureNames, Wire.Encoding encoding) {
    this.encoding = encoding;
    this.n = featureNames.size();
    this.names = featureNames.toArray(new String[0]);
    for (int i = 0; i < n; i++) {
      index.put(featureNames.get(i), i);
    }
  }

  int size() {
    return n;
  }

  /** Fills {@code out} (length n) from {@code value}; NaN for a missing feature or null. */
  void decodeInto(byte[] value, double[] out) throws DecodeException {
    if (value == null) {
      throw new DecodeException("record has no value");
    }
    if (encoding == Wire.Encoding.F64LE) {
      if (value.length != 8 * n) {
        throw new DecodeException(
            "f64le value has " + value.length + " bytes, expected " + (8 * n) + " (" + n + " features)");
      }
      ByteBuffer buf = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < n; i++) {
        out[i] = buf.getDouble(8 * i);
        if (Double.isInfinite(out[i])) {
          throw new DecodeException("feature '" + names[i] + "' is infinite: use NaN for missing");
        }
      }
      return;
    }
    Arrays.fill(out, Double.NaN);
    try (JsonParser p = JSON.createParser(value)) {
      JsonToken t = p.nextToken();
      if (t != JsonToken.START_OBJECT) {
        if (t == null) {
          throw new DecodeException("value is not JSON: empty value");
        }
        // Make sure it is valid JSON at all before complaining about its type.
        p.skipChildren();
        requireEnd(p);
        throw new DecodeException("value must be a JSON object of features, got " + typeName(t));
      }
      while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        JsonToken v = p.nextToken();
        Integer j = index.get(name);
        if (j == null) {
          throw new DecodeException("unknown feature '" + name + "'");
        }
        if (v == JsonToken.VALUE_NUMBER_INT || v == JsonToken.VALUE_NUMBER_FLOAT) {
          out[j] = p.getDoubleValue();
          if (Double.isInfinite(out[j])) {  // 1e400: orjson refuses it as "not JSON" too
            throw new DecodeException("value is not JSON: number is infinity when parsed as double");
          }
        } else if (v == JsonToken.VALUE_NULL) {
          out[j] = Double.NaN;
        } else {
          String shown = v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY ? typeName(v) : p.getText();
          throw new DecodeException("feature '" + name + "' is not a number: " + shown);
        }
      }
      if (t != JsonToken.END_OBJECT) {
        throw new DecodeException("value is not JSON: unexpected " + t);
      }
      requireEnd(p);
    } catch (JsonProcessingException e) {
      throw new DecodeException("value is not JSON: " + Wire.oneLine(e.getOriginalMessage()));
    } catch (IOException e) {
      throw new DecodeException("value is not JSON: " + Wire.describe(e));
    }
  }

  private static void requireEnd(JsonParser p) throws IOException, DecodeException {
    if (p.nextToken() != null) {
      throw new DecodeException("value is not JSON: trailing data after the top-level value");
    }
  }

  private static String typeName(JsonToken t) {
    return switch (t) {
      case START_ARRAY -> "list";
      case START_OBJECT -> "dict";
      case VALUE_STRING -> "str";
      case VALUE_NUMBER_INT -> "int";
      case VALUE_NUMBER_FLOAT -> "float";
      case VALUE_TRUE, VALUE_FALSE -> "bool";
      case VALUE_NULL -> "NoneType";
      default -> t.name();
    };
  }
}
