package io.debezium.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Decimal;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.transforms.Transformation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class RowToCsvTest {

    private static final String TOPIC = "tf.public.iris_train";
    private static final String FEATURES = "sepal_length,sepal_width,petal_length,petal_width";
    private static final String CLASSES = "Iris-setosa,Iris-versicolor,Iris-virginica";
    /** The iris row as Debezium captures a table of {@code real} features and a {@code text} class. */
    private static final Schema IRIS = SchemaBuilder.struct().name("tf.public.iris_train.Value")
            .field("id", Schema.INT32_SCHEMA)
            .field("sepal_length", Schema.OPTIONAL_FLOAT32_SCHEMA)
            .field("sepal_width", Schema.OPTIONAL_FLOAT32_SCHEMA)
            .field("petal_length", Schema.OPTIONAL_FLOAT32_SCHEMA)
            .field("petal_width", Schema.OPTIONAL_FLOAT32_SCHEMA)
            .field("iris_class", Schema.OPTIONAL_STRING_SCHEMA)
            .build();

    private final RowToCsv<SourceRecord> transform = new RowToCsv<>();

    @AfterEach
    void close() {
        transform.close();
    }

    private static Map<String, String> irisConfig() {
        Map<String, String> props = new HashMap<>();
        props.put("feature.fields", FEATURES);
        props.put("label.field", "iris_class");
        props.put("label.classes", CLASSES);
        props.put("header.prefix", "iris");
        return props;
    }

    private void configureIris(String... overrides) {
        Map<String, String> props = irisConfig();
        for (int i = 0; i < overrides.length; i += 2) {
            props.put(overrides[i], overrides[i + 1]);
        }
        transform.configure(props);
    }

    private static SourceRecord record(Schema valueSchema, Object value) {
        ConnectHeaders headers = new ConnectHeaders();
        headers.addString("origin", "test");
        return new SourceRecord(Map.of("server", "tf"), Map.of("lsn", 1L), TOPIC, 0,
                null, null, valueSchema, value, 1_700_000_000_000L, headers);
    }

    private static SourceRecord iris(Float sepalLength, String irisClass) {
        return record(IRIS, new Struct(IRIS).put("id", 42).put("sepal_length", sepalLength).put("sepal_width", 3.5f)
                .put("petal_length", 1.4f).put("petal_width", 0.2f).put("iris_class", irisClass));
    }

    /** A one-feature table {@code (id, label, f1)} whose feature has {@code schema}. */
    private static SourceRecord oneFeature(Schema schema, Object value) {
        Schema row = SchemaBuilder.struct().field("id", Schema.INT64_SCHEMA).field("label", Schema.INT16_SCHEMA)
                .field("f1", schema).build();
        return record(row, new Struct(row).put("id", 7L).put("label", (short) 1).put("f1", value));
    }

    private static String headerOf(SourceRecord record, String name) {
        Header header = record.headers().lastWithName(name);
        return header == null ? null : (String) header.value();
    }

    private void assertInvalid(SourceRecord output, String reason) {
        assertEquals(TOPIC + ".invalid", output.topic());
        assertEquals(reason, headerOf(output, "iris.error"));
        assertEquals(Schema.STRING_SCHEMA, output.valueSchema());
    }

    @Test
    void numericRowBecomesClassIndexKeyAndCsvValue() {
        configureIris();

        SourceRecord output = transform.apply(iris(5.1f, "Iris-virginica"));

        assertEquals(TOPIC, output.topic());
        assertEquals(0, output.kafkaPartition());
        assertEquals("2", output.key());
        assertEquals(Schema.STRING_SCHEMA, output.keySchema());
        assertEquals("5.1,3.5,1.4,0.2", output.value());
        assertEquals(Schema.STRING_SCHEMA, output.valueSchema());
        assertEquals(1_700_000_000_000L, output.timestamp());
        assertNull(headerOf(output, "iris.error"));
    }

    @Test
    void everyIntegerWidthIsWrittenAsDecimalText() {
        Schema row = SchemaBuilder.struct().field("label", Schema.INT16_SCHEMA)
                .field("a", Schema.INT8_SCHEMA).field("b", Schema.INT16_SCHEMA)
                .field("c", Schema.INT32_SCHEMA).field("d", Schema.INT64_SCHEMA).build();
        transform.configure(Map.of("feature.fields", "a,b,c,d", "label.classes", "0,1", "header.prefix", "t"));

        SourceRecord output = transform.apply(record(row, new Struct(row).put("label", (short) 0)
                .put("a", (byte) -8).put("b", (short) 300).put("c", 70_000).put("d", 9_007_199_254_740_993L)));

        assertEquals("-8,300,70000,9007199254740993", output.value());
    }

    @Test
    void doubleIsWrittenAsTheShortestTextThatReadsBack() {
        SourceRecord output = applyOneFeature(Schema.FLOAT64_SCHEMA, 0.1 + 0.2);

        assertEquals("0.30000000000000004", output.value());
        assertEquals(0.1 + 0.2, Double.parseDouble((String) output.value()));
    }

    @Test
    void decimalIsWrittenWithoutExponent() {
        Schema numeric = Decimal.schema(2);

        SourceRecord output = applyOneFeature(numeric, new BigDecimal("12345678901234567890.25"));

        assertEquals("12345678901234567890.25", output.value());
        assertEquals("1000", RowToCsv.rowToCsv(List.of(new BigDecimal("1E+3"))));
    }

    @Test
    void numericWithoutScaleIsWrittenAsItsDecimalValue() {
        // Debezium's precise mode gives a numeric column declared without a scale as a (scale, value) Struct.
        Schema variable = SchemaBuilder.struct().name("io.debezium.data.VariableScaleDecimal").optional()
                .field("scale", Schema.INT32_SCHEMA).field("value", Schema.BYTES_SCHEMA).build();
        Struct value = new Struct(variable).put("scale", 3).put("value", BigInteger.valueOf(-12_345).toByteArray());

        SourceRecord output = applyOneFeature(variable, value);

        assertEquals("-12.345", output.value());
    }

    @Test
    void byteaFeatureExpandsToUnsignedBytes() {
        transform.configure(Map.of("feature.fields", "f1", "label.classes", "0,1", "header.prefix", "t"));

        SourceRecord output = transform.apply(oneFeature(Schema.BYTES_SCHEMA, new byte[] {0, 0x7F, (byte) 0xFF}));

        assertEquals("1", output.key());
        assertEquals("0,127,255", output.value());
    }

    @Test
    void byteaFeatureIsReadFromItsBufferPositionToLimit() {
        byte[] backing = {9, 1, 2, 9};
        ByteBuffer slice = ByteBuffer.wrap(backing, 1, 2);

        SourceRecord output = applyOneFeature(Schema.BYTES_SCHEMA, slice);

        assertEquals("1,2", output.value());
        assertEquals(1, slice.position(), "the input buffer's position is left alone");
    }

    @Test
    void byteaOfTheWrongLengthIsRoutedToInvalidTopic() {
        transform.configure(Map.of("feature.fields", "f1", "label.classes", "0,1", "header.prefix", "t",
                "bytes.length", "4"));

        SourceRecord output = transform.apply(oneFeature(Schema.BYTES_SCHEMA, new byte[3]));

        assertEquals(TOPIC + ".invalid", output.topic());
        assertEquals("f1 has 3 bytes, expected 4", headerOf(output, "t.error"));
    }

    @Test
    void integerLabelIsMatchedByItsDecimalText() {
        Schema row = SchemaBuilder.struct().field("label", Schema.INT16_SCHEMA).field("pixels", Schema.BYTES_SCHEMA)
                .build();
        transform.configure(Map.of("feature.fields", "pixels", "label.classes", "0,1,2,3,4,5,6,7,8,9",
                "header.prefix", "mnist"));

        SourceRecord output = transform.apply(record(row, new Struct(row).put("label", (short) 7)
                .put("pixels", new byte[] {1})));

        assertEquals("7", output.key());
    }

    @Test
    void labelKeyIsTheIndexOfItsClass() {
        transform.configure(Map.of("feature.fields", "f1", "label.classes", "cat,dog", "header.prefix", "pets"));
        Schema row = SchemaBuilder.struct().field("label", Schema.STRING_SCHEMA).field("f1", Schema.INT32_SCHEMA)
                .build();

        List<Object> keys = new ArrayList<>();
        for (String label : new String[] {"dog", "cat"}) {
            keys.add(transform.apply(record(row, new Struct(row).put("label", label).put("f1", 1))).key());
        }

        assertEquals(List.of("1", "0"), keys);
    }

    @Test
    void unknownLabelIsRoutedToInvalidTopic() {
        configureIris();

        SourceRecord output = transform.apply(iris(5.1f, "Iris-unknown"));

        assertInvalid(output, "iris_class \"Iris-unknown\" is not one of the 3 label.classes");
    }

    @Test
    void nullLabelIsRoutedToInvalidTopic() {
        configureIris();

        assertInvalid(transform.apply(iris(5.1f, null)), "iris_class is NULL");
    }

    @Test
    void droppedColumnIsRoutedToInvalidTopic() {
        transform.configure(Map.of("feature.fields", "f1,f2", "label.classes", "0,1", "header.prefix", "iris"));

        SourceRecord output = transform.apply(oneFeature(Schema.INT32_SCHEMA, 5));

        assertInvalid(output, "no column f2");
        assertEquals("{\"id\":7,\"label\":1,\"f1\":5}", output.value());
    }

    @Test
    void retypedColumnIsRoutedToInvalidTopic() {
        configureIris();
        Schema retyped = SchemaBuilder.struct().field("id", Schema.INT32_SCHEMA)
                .field("sepal_length", Schema.OPTIONAL_STRING_SCHEMA)
                .field("sepal_width", Schema.FLOAT32_SCHEMA).field("petal_length", Schema.FLOAT32_SCHEMA)
                .field("petal_width", Schema.FLOAT32_SCHEMA).field("iris_class", Schema.STRING_SCHEMA).build();

        SourceRecord output = transform.apply(record(retyped, new Struct(retyped).put("id", 42)
                .put("sepal_length", "5.1").put("sepal_width", 3.5f).put("petal_length", 1.4f)
                .put("petal_width", 0.2f).put("iris_class", "Iris-setosa")));

        assertInvalid(output, "sepal_length is a STRING, not a number");
        assertEquals("42", headerOf(output, "iris.id"));
    }

    @Test
    void columnOfALogicalTypeIsNamedByItInTheReason() {
        SourceRecord output = applyOneFeature(Timestamp.SCHEMA, new java.util.Date(0));

        assertEquals("f1 is a Timestamp, not a number", headerOf(output, "t.error"));
    }

    @Test
    void addedColumnIsIgnored() {
        configureIris();
        Schema widened = SchemaBuilder.struct().field("id", Schema.INT32_SCHEMA)
                .field("sepal_length", Schema.FLOAT32_SCHEMA).field("sepal_width", Schema.FLOAT32_SCHEMA)
                .field("petal_length", Schema.FLOAT32_SCHEMA).field("petal_width", Schema.FLOAT32_SCHEMA)
                .field("iris_class", Schema.STRING_SCHEMA).field("colour", Schema.OPTIONAL_STRING_SCHEMA).build();

        SourceRecord output = transform.apply(record(widened, new Struct(widened).put("id", 42)
                .put("sepal_length", 5.1f).put("sepal_width", 3.5f).put("petal_length", 1.4f)
                .put("petal_width", 0.2f).put("iris_class", "Iris-setosa").put("colour", "blue")));

        assertEquals(TOPIC, output.topic());
        assertEquals("0", output.key());
        assertEquals("5.1,3.5,1.4,0.2", output.value());
    }

    @Test
    void nanFeatureIsRoutedToInvalidTopic() {
        configureIris();

        SourceRecord output = transform.apply(iris(Float.NaN, "Iris-setosa"));

        assertInvalid(output, "sepal_length is NaN");
        assertTrue(((String) output.value()).contains("\"sepal_length\":\"NaN\""), "the kept row is valid JSON");
    }

    @Test
    void infiniteFeatureIsRoutedToInvalidTopic() {
        SourceRecord output = applyOneFeature(Schema.FLOAT64_SCHEMA, Double.NEGATIVE_INFINITY);

        assertEquals("f1 is -Infinity", headerOf(output, "t.error"));
    }

    @Test
    void nullFeatureIsRoutedToInvalidTopic() {
        configureIris();

        assertInvalid(transform.apply(iris(null, "Iris-setosa")), "sepal_length is NULL");
    }

    @Test
    void headerPrefixNamesTheSourceHeaders() {
        configureIris();

        SourceRecord output = transform.apply(iris(5.1f, "Iris-setosa"));

        assertEquals("iris_train", headerOf(output, "iris.table"));
        assertEquals("42", headerOf(output, "iris.id"));
        assertEquals("test", headerOf(output, "origin"));
        assertEquals(3, output.headers().size(), "origin, iris.table, iris.id and nothing else");
    }

    @Test
    void rewrittenDeleteIsConvertedAndKeepsItsOpHeader() {
        configureIris();
        Schema deleted = SchemaBuilder.struct().field("id", Schema.INT32_SCHEMA)
                .field("sepal_length", Schema.FLOAT32_SCHEMA).field("sepal_width", Schema.FLOAT32_SCHEMA)
                .field("petal_length", Schema.FLOAT32_SCHEMA).field("petal_width", Schema.FLOAT32_SCHEMA)
                .field("iris_class", Schema.STRING_SCHEMA).field("__deleted", Schema.OPTIONAL_STRING_SCHEMA).build();
        SourceRecord input = record(deleted, new Struct(deleted).put("id", 42).put("sepal_length", 5.1f)
                .put("sepal_width", 3.5f).put("petal_length", 1.4f).put("petal_width", 0.2f)
                .put("iris_class", "Iris-versicolor").put("__deleted", "true"));
        input.headers().addString("__op", "d");

        SourceRecord output = transform.apply(input);

        assertEquals("1", output.key());
        assertEquals("5.1,3.5,1.4,0.2", output.value());
        assertEquals("d", headerOf(output, "__op"));
    }

    @Test
    void tombstonePassesThroughOrIsDroppedAsConfigured() {
        configureIris();
        SourceRecord tombstone = record(IRIS, null);
        assertSame(tombstone, transform.apply(tombstone));

        configureIris("null.value.handling", "DROP");
        assertNull(transform.apply(tombstone));
    }

    @Test
    void structOfAnotherTablePassesThroughUnchanged() {
        configureIris();
        Schema heartbeat = SchemaBuilder.struct().field("ts_ms", Schema.INT64_SCHEMA).build();
        SourceRecord input = record(heartbeat, new Struct(heartbeat).put("ts_ms", 1L));

        assertSame(input, transform.apply(input));
    }

    @Test
    void valueThatIsNotAStructIsRoutedToInvalidTopicUnchanged() {
        configureIris();

        SourceRecord output = transform.apply(record(Schema.STRING_SCHEMA, "5.1,3.5"));

        assertEquals(TOPIC + ".invalid", output.topic());
        assertEquals("value is not a Struct but String", headerOf(output, "iris.error"));
        assertEquals("5.1,3.5", output.value());
        assertNull(headerOf(output, "iris.id"));
    }

    @Test
    void rowToCsvJoinsMixedValuesInOrder() {
        List<Object> values = List.of(5.1f, 7, new byte[] {0, (byte) 0xFF}, new BigDecimal("1E+3"), (short) -2);

        assertEquals("5.1,7,0,255,1000,-2", RowToCsv.rowToCsv(values));
    }

    @Test
    void rowToCsvOfEmptyBytesFirstStartsWithTheNextValue() {
        assertEquals("3", RowToCsv.rowToCsv(List.of(new byte[0], 3)));
    }

    @Test
    void missingFeatureFieldsFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.remove("feature.fields");
        assertConfigError(props, "feature.fields");
    }

    @Test
    void missingHeaderPrefixFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.remove("header.prefix");
        assertConfigError(props, "header.prefix");
    }

    @Test
    void missingLabelClassesFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.remove("label.classes");
        assertConfigError(props, "label.classes");
    }

    @Test
    void duplicateClassFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.put("label.classes", "a,b,a");
        assertConfigError(props, "label.classes");
    }

    @Test
    void repeatedFeatureFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.put("feature.fields", "a, b, a");
        assertConfigError(props, "feature.fields");
    }

    @Test
    void emptyFeatureNameFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.put("feature.fields", "a,,b");
        assertConfigError(props, "feature.fields");
    }

    @Test
    void negativeBytesLengthFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.put("bytes.length", "-1");
        assertConfigError(props, "bytes.length");
    }

    @Test
    void unknownNullHandlingFailsInConfigureNamingTheOption() {
        Map<String, String> props = irisConfig();
        props.put("null.value.handling", "explode");
        assertConfigError(props, "null.value.handling");
    }

    @Test
    void configDefDocumentsEveryOption() {
        for (String name : RowToCsv.CONFIG_DEF.names()) {
            String doc = RowToCsv.CONFIG_DEF.configKeys().get(name).documentation;
            assertTrue(doc != null && !doc.isBlank(), name + " has no doc string");
        }
        assertSame(RowToCsv.CONFIG_DEF, transform.config());
    }

    @Test
    void bothTransformsAreRegisteredForPluginDiscovery() {
        List<String> names = new ArrayList<>();
        ServiceLoader.load(Transformation.class).stream().forEach(provider -> names.add(provider.type().getName()));

        assertTrue(names.contains(RowToCsv.class.getName()), names.toString());
        assertTrue(names.contains(MnistToCsv.class.getName()), names.toString());
    }

    private SourceRecord applyOneFeature(Schema schema, Object value) {
        transform.configure(Map.of("feature.fields", "f1", "label.classes", "0,1", "header.prefix", "t"));
        return transform.apply(oneFeature(schema, value));
    }

    private void assertConfigError(Map<String, String> props, String option) {
        ConfigException error = assertThrows(ConfigException.class, () -> transform.configure(props));
        assertTrue(error.getMessage().contains(option), error.getMessage());
    }
}
