package io.debezium.transforms;

import java.nio.ByteBuffer;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.components.Versioned;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.header.Headers;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.util.SimpleConfig;

/**
 * Turns an MNIST row, as Debezium's {@code ExtractNewRecordState} leaves it, into the record TensorFlow reads.
 *
 * <p>Input: a record whose value is a {@link Struct} with an integer label field and a bytes pixels field
 * (one unsigned byte a pixel, row-major, {@code image.width × image.height} of them).
 * Output: key = the label as a decimal string ({@code "7"}), value = the pixels as unsigned decimal integers
 * joined by commas ({@code "0,0,...,255"}), both with STRING schemas; topic, partition, timestamp and headers kept.
 *
 * <p>Where the row came from travels in two STRING headers, so that a predictor can key its answer by the source
 * row: {@value #TABLE_HEADER}, the table (the last part of the topic name, which Debezium makes
 * {@code <topic.prefix>.<schema>.<table>}), and {@value #ID_HEADER}, the row's integer {@code id.field} as decimal
 * text ({@code "42"}). The worker's default header converter (SimpleHeaderConverter) writes a STRING header as its
 * UTF-8 bytes. A row without that field, or with a NULL or non-integer one, gets no {@value #ID_HEADER}.
 *
 * <p>{@code apply} never throws, because a throwing transform fails the connector task and stops streaming
 * for every captured table. A NULL value (a delete) passes through or is dropped, as configured. A Struct
 * with neither the label nor the pixels field is not an MNIST row (a heartbeat, another table) and passes
 * through unchanged. Every other row that cannot be converted goes to {@code <topic><invalid.topic.suffix>}
 * with the reason in the {@value #ERROR_HEADER} header, the same source headers (the table of the original topic)
 * and its content kept, so nothing is lost.
 */
public class MnistToCsv<R extends ConnectRecord<R>> implements Transformation<R>, Versioned {

    public static final String OVERVIEW_DOC = "Converts an MNIST row (label, pixels) into a record whose key is the label "
            + "as a decimal string and whose value is the pixels as comma-separated unsigned integers. Rows that cannot "
            + "be converted are re-routed to '<topic><invalid.topic.suffix>' with the reason in the 'mnist.error' header. "
            + "Both carry the source table and row id in the 'mnist.table' and 'mnist.id' headers.";

    public static final String LABEL_FIELD_CONFIG = "label.field";
    public static final String PIXELS_FIELD_CONFIG = "pixels.field";
    public static final String ID_FIELD_CONFIG = "id.field";
    public static final String IMAGE_WIDTH_CONFIG = "image.width";
    public static final String IMAGE_HEIGHT_CONFIG = "image.height";
    public static final String LABEL_MIN_CONFIG = "label.min";
    public static final String LABEL_MAX_CONFIG = "label.max";
    public static final String INVALID_TOPIC_SUFFIX_CONFIG = "invalid.topic.suffix";
    public static final String NULL_VALUE_HANDLING_CONFIG = "null.value.handling";
    /** Option name of the upstream example, accepted as an alias of {@link #LABEL_FIELD_CONFIG}. */
    public static final String LABEL_FIELD_ALIAS = "label_column";
    /** Option name of the upstream example, accepted as an alias of {@link #PIXELS_FIELD_CONFIG}. */
    public static final String PIXELS_FIELD_ALIAS = "pixels_column";

    public static final String ERROR_HEADER = "mnist.error";
    /** The source table, e.g. {@code mnist_test}. */
    public static final String TABLE_HEADER = "mnist.table";
    /** The source row's id as decimal text, e.g. {@code 42}. */
    public static final String ID_HEADER = "mnist.id";
    public static final String VERSION = "1.0.0";

    /** What to do with a record whose value is NULL: since Debezium 3.2 every DELETE arrives as one. */
    public enum NullValueHandling {
        /** Keep the record as it is (a tombstone on the output topic). */
        PASSTHROUGH,
        /** Remove the record from the stream. */
        DROP;

        static NullValueHandling parse(String value) {
            return valueOf(value.trim().toUpperCase(Locale.ROOT));
        }
    }

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(LABEL_FIELD_CONFIG, Type.STRING, "label", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Name of the integer field holding the label.")
            .define(PIXELS_FIELD_CONFIG, Type.STRING, "pixels", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Name of the bytes field holding the pixels, one unsigned byte a pixel, row-major.")
            .define(ID_FIELD_CONFIG, Type.STRING, "id", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Name of the integer field identifying the row (its primary key); its value goes, as decimal "
                            + "text, into the 'mnist.id' header.")
            .define(IMAGE_WIDTH_CONFIG, Type.INT, 28, ConfigDef.Range.between(1, 4096), Importance.MEDIUM,
                    "Image width in pixels; a valid row has image.width × image.height pixel bytes.")
            .define(IMAGE_HEIGHT_CONFIG, Type.INT, 28, ConfigDef.Range.between(1, 4096), Importance.MEDIUM,
                    "Image height in pixels; a valid row has image.width × image.height pixel bytes.")
            .define(LABEL_MIN_CONFIG, Type.INT, 0, Importance.MEDIUM,
                    "Smallest valid label (inclusive); rows with a smaller label go to the invalid topic.")
            .define(LABEL_MAX_CONFIG, Type.INT, 9, Importance.MEDIUM,
                    "Largest valid label (inclusive); rows with a larger label go to the invalid topic.")
            .define(INVALID_TOPIC_SUFFIX_CONFIG, Type.STRING, ".invalid", new ConfigDef.NonEmptyString(),
                    Importance.MEDIUM, "Suffix appended to the record's topic to name the topic invalid rows go to.")
            .define(NULL_VALUE_HANDLING_CONFIG, Type.STRING, "passthrough",
                    ConfigDef.CaseInsensitiveValidString.in("passthrough", "drop"), Importance.MEDIUM,
                    "What to do with a record whose value is NULL (a delete): 'passthrough' keeps it unchanged, "
                            + "'drop' removes it.")
            .define(LABEL_FIELD_ALIAS, Type.STRING, null, Importance.LOW,
                    "Deprecated alias of label.field (the upstream example's option name).")
            .define(PIXELS_FIELD_ALIAS, Type.STRING, null, Importance.LOW,
                    "Deprecated alias of pixels.field (the upstream example's option name).");

    private String labelField;
    private String pixelsField;
    private String idField;
    private int pixelCount;
    private String imageShape;
    private int labelMin;
    private int labelMax;
    private String invalidTopicSuffix;
    private NullValueHandling nullValueHandling;

    @Override
    public void configure(Map<String, ?> props) {
        SimpleConfig config = new SimpleConfig(CONFIG_DEF, props);
        labelField = resolveAlias(config, props, LABEL_FIELD_CONFIG, LABEL_FIELD_ALIAS);
        pixelsField = resolveAlias(config, props, PIXELS_FIELD_CONFIG, PIXELS_FIELD_ALIAS);
        idField = config.getString(ID_FIELD_CONFIG);
        int width = config.getInt(IMAGE_WIDTH_CONFIG);
        int height = config.getInt(IMAGE_HEIGHT_CONFIG);
        pixelCount = width * height;
        imageShape = width + "x" + height;
        labelMin = config.getInt(LABEL_MIN_CONFIG);
        labelMax = config.getInt(LABEL_MAX_CONFIG);
        if (labelMin > labelMax) {
            throw new ConfigException(LABEL_MAX_CONFIG, labelMax,
                    "must be at least " + LABEL_MIN_CONFIG + " (" + labelMin + ")");
        }
        invalidTopicSuffix = config.getString(INVALID_TOPIC_SUFFIX_CONFIG);
        nullValueHandling = NullValueHandling.parse(config.getString(NULL_VALUE_HANDLING_CONFIG));
    }

    /** The alias counts only when the canonical option is not given; both given and different is an error. */
    private static String resolveAlias(SimpleConfig config, Map<String, ?> props, String name, String alias) {
        String canonical = config.getString(name);
        String aliased = config.getString(alias);
        if (aliased == null) {
            return canonical;
        }
        if (aliased.isBlank()) {
            throw new ConfigException(alias, aliased, "must be a non-empty field name");
        }
        if (props.containsKey(name) && !canonical.equals(aliased)) {
            throw new ConfigException(alias, aliased, "conflicts with " + name + "=" + canonical + "; set only one");
        }
        return aliased;
    }

    @Override
    public R apply(R record) {
        Object value = record.value();
        if (value == null) {
            return nullValueHandling == NullValueHandling.DROP ? null : record;
        }
        if (!(value instanceof Struct struct)) {
            return toInvalid(record, null, record.valueSchema(), value,
                    "value is not a Struct but " + value.getClass().getSimpleName());
        }
        Field label = struct.schema().field(labelField);
        Field pixels = struct.schema().field(pixelsField);
        if (label == null && pixels == null) {
            return record;
        }
        String reason = invalidReason(struct, label, pixels);
        if (reason != null) {
            return toInvalid(record, struct, Schema.STRING_SCHEMA, structToJson(struct), reason);
        }
        long labelValue = ((Number) struct.get(label)).longValue();
        byte[] pixelBytes = toBytes(struct.get(pixels));
        return record.newRecord(record.topic(), record.kafkaPartition(),
                Schema.STRING_SCHEMA, Long.toString(labelValue),
                Schema.STRING_SCHEMA, pixelsToCsv(pixelBytes),
                record.timestamp(), sourceHeaders(record, struct));
    }

    /** A copy of the record's headers (the input is left alone) plus the row's table and, when known, its id. */
    private Headers sourceHeaders(R record, Struct row) {
        Headers headers = record.headers().duplicate();
        if (record.topic() != null) {
            headers.addString(TABLE_HEADER, tableOf(record.topic()));
        }
        String id = row == null ? null : idOf(row);
        if (id != null) {
            headers.addString(ID_HEADER, id);
        }
        return headers;
    }

    /** The table of a Debezium topic {@code <topic.prefix>.<schema>.<table>}: {@code "mnist_test"}. */
    static String tableOf(String topic) {
        return topic.substring(topic.lastIndexOf('.') + 1);
    }

    /** The row's id as decimal text, or null when it has no integer {@code id.field}. */
    private String idOf(Struct row) {
        Field field = row.schema().field(idField);
        Object id = field == null ? null : row.get(field);
        return isInteger(id) ? Long.toString(((Number) id).longValue()) : null;
    }

    private static boolean isInteger(Object value) {
        return value instanceof Byte || value instanceof Short || value instanceof Integer || value instanceof Long;
    }

    /** Why the row cannot be converted, or null when it can. */
    private String invalidReason(Struct struct, Field label, Field pixels) {
        if (label == null) {
            return "missing field '" + labelField + "'";
        }
        if (pixels == null) {
            return "missing field '" + pixelsField + "'";
        }
        Object labelValue = struct.get(label);
        if (labelValue == null) {
            return "label is NULL";
        }
        if (!isInteger(labelValue)) {
            return "label is not an integer but " + labelValue.getClass().getSimpleName();
        }
        long labelNumber = ((Number) labelValue).longValue();
        if (labelNumber < labelMin || labelNumber > labelMax) {
            return "label " + labelNumber + " is outside " + labelMin + ".." + labelMax;
        }
        Object pixelValue = struct.get(pixels);
        if (pixelValue == null) {
            return "pixels is NULL";
        }
        byte[] bytes = toBytes(pixelValue);
        if (bytes == null) {
            return "pixels is not bytes but " + pixelValue.getClass().getSimpleName();
        }
        if (bytes.length != pixelCount) {
            return "pixels has " + bytes.length + " bytes, expected " + pixelCount + " (" + imageShape + ")";
        }
        return null;
    }

    /** The record on the invalid topic; {@code row} is the value when it is a Struct, else null (no id known). */
    private R toInvalid(R record, Struct row, Schema valueSchema, Object value, String reason) {
        Headers headers = sourceHeaders(record, row);
        headers.addString(ERROR_HEADER, reason);
        return record.newRecord(record.topic() + invalidTopicSuffix, record.kafkaPartition(),
                record.keySchema(), record.key(), valueSchema, value, record.timestamp(), headers);
    }

    /**
     * The bytes of a BYTES field value. A {@link ByteBuffer} is read from its position to its limit: its backing
     * array may be larger than the value (Kafka's own {@code Struct.getBytes} returns the whole array).
     */
    static byte[] toBytes(Object value) {
        if (value instanceof byte[] bytes) {
            return bytes;
        }
        if (value instanceof ByteBuffer buffer) {
            ByteBuffer view = buffer.duplicate();
            byte[] bytes = new byte[view.remaining()];
            view.get(bytes);
            return bytes;
        }
        return null;
    }

    /**
     * Renders pixel bytes as unsigned decimal integers joined by commas: {@code {0, 0x7F, 0xFF}} gives
     * {@code "0,127,255"}.
     */
    public static String pixelsToCsv(byte[] pixels) {
        StringBuilder csv = new StringBuilder(pixels.length * 4);
        for (int i = 0; i < pixels.length; i++) {
            if (i > 0) {
                csv.append(',');
            }
            csv.append(pixels[i] & 0xFF);
        }
        return csv.toString();
    }

    /** A lossless one-line JSON rendering of a row (bytes as base64), so an invalid row keeps its content. */
    static String structToJson(Struct struct) {
        StringBuilder json = new StringBuilder("{");
        List<Field> fields = struct.schema().fields();
        for (int i = 0; i < fields.size(); i++) {
            Field field = fields.get(i);
            if (i > 0) {
                json.append(',');
            }
            appendJsonString(json, field.name());
            json.append(':');
            appendJsonValue(json, struct.get(field));
        }
        return json.append('}').toString();
    }

    private static void appendJsonValue(StringBuilder json, Object value) {
        byte[] bytes = toBytes(value);
        if (value == null) {
            json.append("null");
        } else if (bytes != null) {
            appendJsonString(json, Base64.getEncoder().encodeToString(bytes));
        } else if (value instanceof Number || value instanceof Boolean) {
            json.append(value);
        } else if (value instanceof Struct nested) {
            json.append(structToJson(nested));
        } else {
            appendJsonString(json, value.toString());
        }
    }

    private static void appendJsonString(StringBuilder json, String text) {
        json.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> json.append("\\\"");
                case '\\' -> json.append("\\\\");
                case '\n' -> json.append("\\n");
                case '\r' -> json.append("\\r");
                case '\t' -> json.append("\\t");
                default -> {
                    if (c < 0x20) {
                        json.append(String.format("\\u%04x", (int) c));
                    } else {
                        json.append(c);
                    }
                }
            }
        }
        json.append('"');
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void close() {
    }

    /** Effective settings, for tests and log lines. */
    Map<String, Object> settings() {
        Map<String, Object> settings = new HashMap<>();
        settings.put(LABEL_FIELD_CONFIG, labelField);
        settings.put(PIXELS_FIELD_CONFIG, pixelsField);
        settings.put(ID_FIELD_CONFIG, idField);
        settings.put("pixel.count", pixelCount);
        settings.put(LABEL_MIN_CONFIG, labelMin);
        settings.put(LABEL_MAX_CONFIG, labelMax);
        settings.put(INVALID_TOPIC_SUFFIX_CONFIG, invalidTopicSuffix);
        settings.put(NULL_VALUE_HANDLING_CONFIG, nullValueHandling);
        return settings;
    }
}
