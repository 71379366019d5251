package io.debezium.transforms;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.util.ArrayList;
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
 * Turns a table row, as Debezium's {@code ExtractNewRecordState} leaves it, into the record TensorFlow reads.
 *
 * <p>Input: a record whose value is a {@link Struct} with a label field and the {@code feature.fields}.
 * Output: key = the index of the label's text in {@code label.classes} as decimal text ({@code "2"} for
 * {@code Iris-virginica} of three iris classes; an integer label is matched by its decimal text, so MNIST's
 * classes {@code 0..9} give key {@code "7"} for label 7), value = the features in {@code feature.fields} order
 * joined by commas, both with STRING schemas; topic, partition, timestamp and headers kept. A bytes feature
 * (PostgreSQL {@code bytea}) expands to one unsigned integer 0..255 a byte; an integer as decimal text; a
 * float or double as the shortest text that reads back to the same value; a decimal ({@code numeric}) without
 * exponent. Columns the row has beyond these are ignored, so adding a column to the table changes nothing.
 *
 * <p>Where the row came from travels in two STRING headers, so that a predictor can key its answer by the source
 * row: {@code <header.prefix>.table}, the table (the last part of the topic name, which Debezium makes
 * {@code <topic.prefix>.<schema>.<table>}), and {@code <header.prefix>.id}, the row's integer {@code id.field} as
 * decimal text. A row without that field, or with a NULL or non-integer one, gets no id header.
 *
 * <p>{@code apply} never throws, because a throwing transform fails the connector task and stops streaming
 * for every captured table. A NULL value (a delete) passes through or is dropped, as configured. A Struct
 * with neither the label nor any feature field is not a row of this dataset (a heartbeat, another table) and
 * passes through unchanged. Every other row that cannot be converted (a feature column dropped, retyped to
 * something that is not a number, NULL, NaN or infinite; a label not in the classes) goes to
 * {@code <topic><invalid.topic.suffix>} with the reason in the {@code <header.prefix>.error} header, the same
 * source headers and its content kept as one-line JSON, so nothing is lost.
 *
 * <p>Subclasses give a dataset its defaults and wording (see {@link MnistToCsv}): they parse their own options
 * into a {@link RowConfig} and may override how a missing column, the label and a feature are judged.
 */
public class RowToCsv<R extends ConnectRecord<R>> implements Transformation<R>, Versioned {

    public static final String OVERVIEW_DOC = "Converts a table row into a record whose key is the index of its label "
            + "in 'label.classes' and whose value is its feature columns as comma-separated numbers. Rows that cannot "
            + "be converted are re-routed to '<topic><invalid.topic.suffix>' with the reason in the "
            + "'<header.prefix>.error' header. Both carry the source table and row id in the '<header.prefix>.table' "
            + "and '<header.prefix>.id' headers.";

    public static final String FEATURE_FIELDS_CONFIG = "feature.fields";
    public static final String LABEL_FIELD_CONFIG = "label.field";
    public static final String LABEL_CLASSES_CONFIG = "label.classes";
    public static final String ID_FIELD_CONFIG = "id.field";
    public static final String HEADER_PREFIX_CONFIG = "header.prefix";
    public static final String BYTES_LENGTH_CONFIG = "bytes.length";
    public static final String INVALID_TOPIC_SUFFIX_CONFIG = "invalid.topic.suffix";
    public static final String NULL_VALUE_HANDLING_CONFIG = "null.value.handling";

    public static final String VERSION = "1.0.0";

    /** Debezium's schema name for a PostgreSQL {@code numeric} without a declared scale (precise mode). */
    static final String VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal";

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
            .define(FEATURE_FIELDS_CONFIG, Type.LIST, ConfigDef.NO_DEFAULT_VALUE,
                    ConfigDef.ValidList.anyNonDuplicateValues(false, false), Importance.HIGH,
                    "Columns that become the record value, in this order, joined by commas: a bytes column expands "
                            + "to its unsigned bytes, a number column is written as decimal text.")
            .define(LABEL_FIELD_CONFIG, Type.STRING, "label", new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "Name of the text or integer field holding the label.")
            .define(LABEL_CLASSES_CONFIG, Type.LIST, ConfigDef.NO_DEFAULT_VALUE,
                    ConfigDef.ValidList.anyNonDuplicateValues(false, false), Importance.HIGH,
                    "The label's values as text, in order; the record key is the index of the row's label here "
                            + "(an integer label is matched by its decimal text) and any other label is invalid.")
            .define(ID_FIELD_CONFIG, Type.STRING, "id", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
                    "Name of the integer field identifying the row (its primary key); its value goes, as decimal "
                            + "text, into the '<header.prefix>.id' header.")
            .define(HEADER_PREFIX_CONFIG, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new ConfigDef.NonEmptyString(),
                    Importance.HIGH, "Prefix of the headers the transform adds: '<prefix>.table', '<prefix>.id' "
                            + "and, on an invalid row, '<prefix>.error' (usually the dataset's name).")
            .define(BYTES_LENGTH_CONFIG, Type.INT, 0, ConfigDef.Range.atLeast(0), Importance.MEDIUM,
                    "Number of bytes a bytes feature must hold (an image's height × width); 0 accepts any length.")
            .define(INVALID_TOPIC_SUFFIX_CONFIG, Type.STRING, ".invalid", new ConfigDef.NonEmptyString(),
                    Importance.MEDIUM, "Suffix appended to the record's topic to name the topic invalid rows go to.")
            .define(NULL_VALUE_HANDLING_CONFIG, Type.STRING, "passthrough",
                    ConfigDef.CaseInsensitiveValidString.in("passthrough", "drop"), Importance.MEDIUM,
                    "What to do with a record whose value is NULL (a delete): 'passthrough' keeps it unchanged, "
                            + "'drop' removes it.");

    /**
     * What {@link #apply} needs from the configuration, whichever options it was parsed from.
     *
     * @param labelField the label column
     * @param featureFields the feature columns, in the order their values are written
     * @param idField the integer column identifying the row
     * @param headerPrefix the headers' prefix: {@code <prefix>.table}, {@code <prefix>.id}, {@code <prefix>.error}
     * @param invalidTopicSuffix appended to the topic of a row that cannot be converted
     * @param nullValueHandling what happens to a NULL value
     */
    protected record RowConfig(String labelField, List<String> featureFields, String idField, String headerPrefix,
            String invalidTopicSuffix, NullValueHandling nullValueHandling) {

        public RowConfig {
            featureFields = List.copyOf(featureFields);
        }
    }

    private RowConfig row;
    private String tableHeader;
    private String idHeader;
    private String errorHeader;
    private Map<String, Integer> classIndex;
    private int bytesLength;

    @Override
    public void configure(Map<String, ?> props) {
        SimpleConfig config = new SimpleConfig(CONFIG_DEF, props);
        classIndex = indexOf(distinctList(config, props, LABEL_CLASSES_CONFIG));
        bytesLength = config.getInt(BYTES_LENGTH_CONFIG);
        use(new RowConfig(config.getString(LABEL_FIELD_CONFIG), distinctList(config, props, FEATURE_FIELDS_CONFIG),
                config.getString(ID_FIELD_CONFIG), config.getString(HEADER_PREFIX_CONFIG),
                config.getString(INVALID_TOPIC_SUFFIX_CONFIG),
                NullValueHandling.parse(config.getString(NULL_VALUE_HANDLING_CONFIG))));
    }

    /**
     * A list option whose values must each appear once. Kafka drops a repeated value of a list option with only a
     * warning, which would silently shift every later class index or drop a feature, so a repeat is an error here.
     */
    private static List<String> distinctList(SimpleConfig config, Map<String, ?> props, String name) {
        List<String> distinct = config.getList(name);
        Object given = props.get(name);
        if (((List<?>) ConfigDef.parseType(name, given, Type.LIST)).size() != distinct.size()) {
            throw new ConfigException(name, given, "names a value twice; list each once");
        }
        return distinct;
    }

    private static Map<String, Integer> indexOf(List<String> classes) {
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < classes.size(); i++) {
            index.put(classes.get(i), i);
        }
        return index;
    }

    /** Sets what {@link #apply} works with; a subclass calls it from its {@code configure}. */
    protected final void use(RowConfig config) {
        row = config;
        tableHeader = config.headerPrefix() + ".table";
        idHeader = config.headerPrefix() + ".id";
        errorHeader = config.headerPrefix() + ".error";
    }

    /** What {@link #configure} parsed. */
    protected final RowConfig rowConfig() {
        return row;
    }

    @Override
    public R apply(R record) {
        Object value = record.value();
        if (value == null) {
            return row.nullValueHandling() == NullValueHandling.DROP ? null : record;
        }
        if (!(value instanceof Struct struct)) {
            return toInvalid(record, null, record.valueSchema(), value,
                    "value is not a Struct but " + value.getClass().getSimpleName());
        }
        if (!hasAnyColumn(struct.schema())) {
            return record;
        }
        String reason = invalidReason(struct);
        if (reason != null) {
            return toInvalid(record, struct, Schema.STRING_SCHEMA, structToJson(struct), reason);
        }
        return record.newRecord(record.topic(), record.kafkaPartition(),
                Schema.STRING_SCHEMA, labelKey(struct.get(row.labelField())),
                Schema.STRING_SCHEMA, rowToCsv(featureValues(struct)),
                record.timestamp(), sourceHeaders(record, struct));
    }

    /** Whether the schema has the label or a feature column: without any, the record is not one of our rows. */
    private boolean hasAnyColumn(Schema schema) {
        if (schema.field(row.labelField()) != null) {
            return true;
        }
        return row.featureFields().stream().anyMatch(name -> schema.field(name) != null);
    }

    /** Why the row cannot be converted, or null when it can: missing columns first, then the label, then features. */
    private String invalidReason(Struct struct) {
        Schema schema = struct.schema();
        if (schema.field(row.labelField()) == null) {
            return missingColumnReason(row.labelField());
        }
        for (String name : row.featureFields()) {
            if (schema.field(name) == null) {
                return missingColumnReason(name);
            }
        }
        Field label = schema.field(row.labelField());
        String reason = labelProblem(label, struct.get(label));
        for (int i = 0; reason == null && i < row.featureFields().size(); i++) {
            Field feature = schema.field(row.featureFields().get(i));
            reason = featureProblem(feature, struct.get(feature));
        }
        return reason;
    }

    /** The reason given when the row has no column {@code name}. */
    protected String missingColumnReason(String name) {
        return "no column " + name;
    }

    /** Why {@code value} of the label column cannot be a key, or null when {@link #labelKey} accepts it. */
    protected String labelProblem(Field column, Object value) {
        if (value == null) {
            return column.name() + " is NULL";
        }
        String text = labelText(value);
        if (text == null) {
            return column.name() + " is a " + typeName(column.schema()) + ", not text or an integer";
        }
        if (!classIndex.containsKey(text)) {
            return column.name() + " \"" + text + "\" is not one of the " + classIndex.size() + " label.classes";
        }
        return null;
    }

    /** The record key of a label {@link #labelProblem} accepted. */
    protected String labelKey(Object value) {
        return Integer.toString(classIndex.get(labelText(value)));
    }

    /** The label as the text {@code label.classes} lists, or null when it is of a type that has none. */
    private static String labelText(Object value) {
        if (value instanceof String text) {
            return text;
        }
        return isInteger(value) || value instanceof Boolean ? value.toString() : null;
    }

    /** Why {@code value} of a feature column cannot be written, or null when {@link #rowToCsv} can write it. */
    protected String featureProblem(Field column, Object value) {
        if (value == null) {
            return column.name() + " is NULL";
        }
        byte[] bytes = toBytes(value);
        if (bytes != null) {
            return bytesLength == 0 || bytes.length == bytesLength ? null
                    : column.name() + " has " + bytes.length + " bytes, expected " + bytesLength;
        }
        Number number = numberOf(value);
        if (number == null) {
            return column.name() + " is a " + typeName(column.schema()) + ", not a number";
        }
        if (!isFinite(number)) {
            // TensorFlow would read NaN, but one NaN input makes every loss and gradient NaN.
            return column.name() + " is " + number;
        }
        return null;
    }

    /** The feature values in order, decimals of a variable scale already made {@link BigDecimal}s. */
    private List<Object> featureValues(Struct struct) {
        List<Object> values = new ArrayList<>(row.featureFields().size());
        for (String name : row.featureFields()) {
            Object value = struct.get(name);
            values.add(toBytes(value) != null ? value : numberOf(value));
        }
        return values;
    }

    /** A number value as the CSV writes it, or null when the value is not a number. */
    static Number numberOf(Object value) {
        if (isInteger(value) || value instanceof Float || value instanceof Double || value instanceof BigDecimal) {
            return (Number) value;
        }
        if (value instanceof Struct struct && VARIABLE_SCALE_DECIMAL.equals(struct.schema().name())) {
            byte[] unscaled = toBytes(struct.get("value"));
            Object scale = struct.get("scale");
            return unscaled == null || !(scale instanceof Integer s) ? null
                    : new BigDecimal(new BigInteger(unscaled), s);
        }
        return null;
    }

    private static boolean isFinite(Number number) {
        return !(number instanceof Float f && !Float.isFinite(f) || number instanceof Double d && !Double.isFinite(d));
    }

    /** The name a reason gives a column's type: its logical type when it has one, else its Connect type. */
    private static String typeName(Schema schema) {
        String name = schema.name();
        return name == null ? schema.type().name() : name.substring(name.lastIndexOf('.') + 1);
    }

    /** A copy of the record's headers (the input is left alone) plus the row's table and, when known, its id. */
    private Headers sourceHeaders(R record, Struct struct) {
        Headers headers = record.headers().duplicate();
        if (record.topic() != null) {
            headers.addString(tableHeader, tableOf(record.topic()));
        }
        String id = struct == null ? null : idOf(struct);
        if (id != null) {
            headers.addString(idHeader, id);
        }
        return headers;
    }

    /** The table of a Debezium topic {@code <topic.prefix>.<schema>.<table>}: {@code "mnist_test"}. */
    static String tableOf(String topic) {
        return topic.substring(topic.lastIndexOf('.') + 1);
    }

    /** The row's id as decimal text, or null when it has no integer {@code id.field}. */
    private String idOf(Struct struct) {
        Field field = struct.schema().field(row.idField());
        Object id = field == null ? null : struct.get(field);
        return isInteger(id) ? Long.toString(((Number) id).longValue()) : null;
    }

    /** Whether the value is a Connect integer (INT8, INT16, INT32 or INT64). */
    protected static boolean isInteger(Object value) {
        return value instanceof Byte || value instanceof Short || value instanceof Integer || value instanceof Long;
    }

    /** The record on the invalid topic; {@code struct} is the value when it is a Struct, else null (no id known). */
    private R toInvalid(R record, Struct struct, Schema valueSchema, Object value, String reason) {
        Headers headers = sourceHeaders(record, struct);
        headers.addString(errorHeader, reason);
        return record.newRecord(record.topic() + row.invalidTopicSuffix(), record.kafkaPartition(),
                record.keySchema(), record.key(), valueSchema, value, record.timestamp(), headers);
    }

    /**
     * The bytes of a BYTES field value, or null when it is not one. A {@link ByteBuffer} is read from its position
     * to its limit: its backing array may be larger than the value (Kafka's own {@code Struct.getBytes} returns
     * the whole array).
     */
    protected static byte[] toBytes(Object value) {
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
     * Joins feature values with commas: bytes ({@code byte[]} or {@link ByteBuffer}) expand to one unsigned integer
     * a byte, a {@link BigDecimal} is written without exponent, other numbers as Java writes them (for a float or
     * double the shortest text that reads back to the same value). {@code [5.1f, 7, {0, 0xFF}, 1E+3]} gives
     * {@code "5.1,7,0,255,1000"}.
     */
    public static String rowToCsv(List<?> values) {
        StringBuilder csv = new StringBuilder();
        for (Object value : values) {
            byte[] bytes = toBytes(value);
            if (bytes != null) {
                csv.ensureCapacity(csv.length() + bytes.length * 4);
                for (byte b : bytes) {
                    separate(csv).append(b & 0xFF);
                }
            } else {
                separate(csv).append(value instanceof BigDecimal decimal ? decimal.toPlainString() : value);
            }
        }
        return csv.toString();
    }

    /** Every value written is non-empty, so an empty builder means the first value is next. */
    private static StringBuilder separate(StringBuilder csv) {
        return csv.isEmpty() ? csv : csv.append(',');
    }

    /**
     * Renders pixel bytes as unsigned decimal integers joined by commas: {@code {0, 0x7F, 0xFF}} gives
     * {@code "0,127,255"}.
     */
    public static String pixelsToCsv(byte[] pixels) {
        return rowToCsv(List.of(pixels));
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
        } else if (value instanceof Number number && isFinite(number) || value instanceof Boolean) {
            json.append(value);
        } else if (value instanceof Struct nested) {
            json.append(structToJson(nested));
        } else {
            // Also NaN and infinities, which JSON has no number for.
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
}
