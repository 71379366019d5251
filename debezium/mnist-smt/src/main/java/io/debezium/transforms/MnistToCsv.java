package io.debezium.transforms;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.transforms.util.SimpleConfig;

/**
 * Turns an MNIST row, as Debezium's {@code ExtractNewRecordState} leaves it, into the record TensorFlow reads:
 * {@link RowToCsv} with MNIST's options, defaults and reasons, under the class name the talk's configuration uses.
 *
 * <p>Input: a record whose value is a {@link org.apache.kafka.connect.data.Struct} with an integer label field and
 * a bytes pixels field (one unsigned byte a pixel, row-major, {@code image.width × image.height} of them).
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
public class MnistToCsv<R extends ConnectRecord<R>> extends RowToCsv<R> {

    public static final String OVERVIEW_DOC = "Converts an MNIST row (label, pixels) into a record whose key is the label "
            + "as a decimal string and whose value is the pixels as comma-separated unsigned integers. Rows that cannot "
            + "be converted are re-routed to '<topic><invalid.topic.suffix>' with the reason in the 'mnist.error' header. "
            + "Both carry the source table and row id in the 'mnist.table' and 'mnist.id' headers.";

    public static final String PIXELS_FIELD_CONFIG = "pixels.field";
    public static final String IMAGE_WIDTH_CONFIG = "image.width";
    public static final String IMAGE_HEIGHT_CONFIG = "image.height";
    public static final String LABEL_MIN_CONFIG = "label.min";
    public static final String LABEL_MAX_CONFIG = "label.max";
    /** Option name of the upstream example, accepted as an alias of {@link #LABEL_FIELD_CONFIG}. */
    public static final String LABEL_FIELD_ALIAS = "label_column";
    /** Option name of the upstream example, accepted as an alias of {@link #PIXELS_FIELD_CONFIG}. */
    public static final String PIXELS_FIELD_ALIAS = "pixels_column";

    /** The {@link #HEADER_PREFIX_CONFIG} MNIST's records carry: the names the talk's consumers read. */
    public static final String HEADER_PREFIX = "mnist";
    public static final String ERROR_HEADER = "mnist.error";
    /** The source table, e.g. {@code mnist_test}. */
    public static final String TABLE_HEADER = "mnist.table";
    /** The source row's id as decimal text, e.g. {@code 42}. */
    public static final String ID_HEADER = "mnist.id";

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

    private int pixelCount;
    private String imageShape;
    private int labelMin;
    private int labelMax;

    @Override
    public void configure(Map<String, ?> props) {
        SimpleConfig config = new SimpleConfig(CONFIG_DEF, props);
        String labelField = resolveAlias(config, props, LABEL_FIELD_CONFIG, LABEL_FIELD_ALIAS);
        String pixelsField = resolveAlias(config, props, PIXELS_FIELD_CONFIG, PIXELS_FIELD_ALIAS);
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
        use(new RowConfig(labelField, List.of(pixelsField), config.getString(ID_FIELD_CONFIG), HEADER_PREFIX,
                config.getString(INVALID_TOPIC_SUFFIX_CONFIG),
                NullValueHandling.parse(config.getString(NULL_VALUE_HANDLING_CONFIG))));
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
    protected String missingColumnReason(String name) {
        return "missing field '" + name + "'";
    }

    /** MNIST's label is its own key, so it is an integer in a range rather than one of a list of texts. */
    @Override
    protected String labelProblem(Field column, Object value) {
        if (value == null) {
            return "label is NULL";
        }
        if (!isInteger(value)) {
            return "label is not an integer but " + value.getClass().getSimpleName();
        }
        long label = ((Number) value).longValue();
        if (label < labelMin || label > labelMax) {
            return "label " + label + " is outside " + labelMin + ".." + labelMax;
        }
        return null;
    }

    @Override
    protected String labelKey(Object value) {
        return Long.toString(((Number) value).longValue());
    }

    @Override
    protected String featureProblem(Field column, Object value) {
        if (value == null) {
            return "pixels is NULL";
        }
        byte[] bytes = toBytes(value);
        if (bytes == null) {
            return "pixels is not bytes but " + value.getClass().getSimpleName();
        }
        if (bytes.length != pixelCount) {
            return "pixels has " + bytes.length + " bytes, expected " + pixelCount + " (" + imageShape + ")";
        }
        return null;
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    /** Effective settings, for tests and log lines. */
    Map<String, Object> settings() {
        RowConfig row = rowConfig();
        Map<String, Object> settings = new HashMap<>();
        settings.put(LABEL_FIELD_CONFIG, row.labelField());
        settings.put(PIXELS_FIELD_CONFIG, row.featureFields().get(0));
        settings.put(ID_FIELD_CONFIG, row.idField());
        settings.put("pixel.count", pixelCount);
        settings.put(LABEL_MIN_CONFIG, labelMin);
        settings.put(LABEL_MAX_CONFIG, labelMax);
        settings.put(INVALID_TOPIC_SUFFIX_CONFIG, row.invalidTopicSuffix());
        settings.put(NULL_VALUE_HANDLING_CONFIG, row.nullValueHandling());
        return settings;
    }
}
