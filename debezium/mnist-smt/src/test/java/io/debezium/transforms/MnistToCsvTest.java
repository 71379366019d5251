package io.debezium.transforms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class MnistToCsvTest {

    private static final String TOPIC = "tf.public.mnist_train";
    private static final Schema KEY_SCHEMA = SchemaBuilder.struct().name("tf.public.mnist_train.Key")
            .field("id", Schema.INT32_SCHEMA).build();
    private static final Schema ROW_SCHEMA = SchemaBuilder.struct().name("tf.public.mnist_train.Value")
            .field("id", Schema.INT32_SCHEMA)
            .field("label", Schema.OPTIONAL_INT16_SCHEMA)
            .field("pixels", Schema.OPTIONAL_BYTES_SCHEMA)
            .build();

    private final MnistToCsv<SourceRecord> transform = new MnistToCsv<>();

    @AfterEach
    void close() {
        transform.close();
    }

    private static SourceRecord record(Schema valueSchema, Object value) {
        ConnectHeaders headers = new ConnectHeaders();
        headers.addString("origin", "test");
        return new SourceRecord(Map.of("server", "tf"), Map.of("lsn", 1L), TOPIC, 0,
                KEY_SCHEMA, new Struct(KEY_SCHEMA).put("id", 42), valueSchema, value, 1_700_000_000_000L, headers);
    }

    private static SourceRecord row(Short label, Object pixels) {
        return record(ROW_SCHEMA, new Struct(ROW_SCHEMA).put("id", 42).put("label", label).put("pixels", pixels));
    }

    private static byte[] blankImage() {
        return new byte[784];
    }

    private static String errorOf(SourceRecord record) {
        Header header = record.headers().lastWithName(MnistToCsv.ERROR_HEADER);
        return header == null ? null : (String) header.value();
    }

    private static String headerOf(SourceRecord record, String name) {
        Header header = record.headers().lastWithName(name);
        return header == null ? null : (String) header.value();
    }

    private SourceRecord applyDefault(SourceRecord record) {
        transform.configure(Map.of());
        return transform.apply(record);
    }

    private void assertInvalid(SourceRecord input, SourceRecord output, String reason) {
        assertEquals(TOPIC + ".invalid", output.topic());
        assertEquals(reason, errorOf(output));
        assertEquals(input.key(), output.key());
        assertEquals(input.timestamp(), output.timestamp());
    }

    @Test
    void realDigitBecomesLabelKeyAndCsvValue() throws IOException {
        String csv;
        try (InputStream in = getClass().getResourceAsStream("/digit-7.csv")) {
            csv = new String(in.readAllBytes(), StandardCharsets.US_ASCII).trim();
        }
        byte[] pixels = new byte[784];
        String[] values = csv.split(",");
        assertEquals(784, values.length);
        for (int i = 0; i < values.length; i++) {
            pixels[i] = (byte) Integer.parseInt(values[i]);
        }

        SourceRecord output = applyDefault(row((short) 7, pixels));

        assertEquals(TOPIC, output.topic());
        assertEquals(0, output.kafkaPartition());
        assertEquals("7", output.key());
        assertEquals(Schema.STRING_SCHEMA, output.keySchema());
        assertEquals(csv, output.value());
        assertEquals(Schema.STRING_SCHEMA, output.valueSchema());
        assertEquals(1_700_000_000_000L, output.timestamp());
        assertEquals("test", output.headers().lastWithName("origin").value());
        assertNull(errorOf(output));
    }

    @Test
    void rewrittenDeleteBecomesCsvOnTheRoutedPartitionWithItsOpHeader() {
        // ExtractNewRecordState in rewrite mode: a DELETE is the row's old version plus a __deleted field, and the
        // operation travels in the __op header; PartitionRouting has chosen the partition before.
        Schema schema = SchemaBuilder.struct().name("tf.public.mnist_train.Value")
                .field("id", Schema.INT32_SCHEMA)
                .field("label", Schema.OPTIONAL_INT16_SCHEMA)
                .field("pixels", Schema.OPTIONAL_BYTES_SCHEMA)
                .field("__deleted", Schema.OPTIONAL_STRING_SCHEMA)
                .build();
        Struct value = new Struct(schema).put("id", 42).put("label", (short) 6).put("pixels", blankImage())
                .put("__deleted", "true");
        ConnectHeaders headers = new ConnectHeaders();
        headers.addString("__op", "d");
        SourceRecord input = new SourceRecord(Map.of("server", "tf"), Map.of("lsn", 1L), TOPIC, 1,
                KEY_SCHEMA, new Struct(KEY_SCHEMA).put("id", 42), schema, value, 1_700_000_000_000L, headers);

        SourceRecord output = applyDefault(input);

        assertEquals(TOPIC, output.topic());
        assertEquals(1, output.kafkaPartition());
        assertEquals("6", output.key());
        assertEquals(MnistToCsv.pixelsToCsv(blankImage()), output.value());
        assertEquals("d", headerOf(output, "__op"));
        assertEquals("42", headerOf(output, MnistToCsv.ID_HEADER));
        assertNull(errorOf(output));
    }

    @Test
    void byte0xFFRendersAs255() {
        assertEquals("0,127,128,255", MnistToCsv.pixelsToCsv(new byte[] {0, 0x7F, (byte) 0x80, (byte) 0xFF}));
    }

    @Test
    void emptyPixelArrayRendersAsEmptyString() {
        assertEquals("", MnistToCsv.pixelsToCsv(new byte[0]));
    }

    @Test
    void inputRecordIsNotMutated() {
        SourceRecord input = row((short) 3, blankImage());
        Object valueBefore = input.value();

        applyDefault(input);

        assertSame(valueBefore, input.value());
        assertEquals(TOPIC, input.topic());
        assertEquals(1, input.headers().size());
    }

    @Test
    void byteBufferIsReadFromPositionToLimit() {
        byte[] backing = new byte[800];
        Arrays.fill(backing, (byte) 9);
        Arrays.fill(backing, 10, 10 + 784, (byte) 0xFF);
        ByteBuffer slice = ByteBuffer.wrap(backing, 10, 784);

        SourceRecord output = applyDefault(row((short) 1, slice));

        assertEquals(TOPIC, output.topic());
        String[] values = ((String) output.value()).split(",");
        assertEquals(784, values.length);
        assertTrue(Arrays.stream(values).allMatch("255"::equals));
        assertEquals(10, slice.position(), "the input buffer's position is left alone");
    }

    @Test
    void nullValuePassesThroughByDefault() {
        SourceRecord tombstone = record(ROW_SCHEMA, null);

        assertSame(tombstone, applyDefault(tombstone));
    }

    @Test
    void nullValueIsDroppedWhenConfigured() {
        transform.configure(Map.of("null.value.handling", "drop"));

        assertNull(transform.apply(record(ROW_SCHEMA, null)));
    }

    @Test
    void nullValueHandlingIsCaseInsensitive() {
        transform.configure(Map.of("null.value.handling", "DROP"));

        assertNull(transform.apply(record(ROW_SCHEMA, null)));
    }

    @Test
    void nullPixelsAreRoutedToInvalidTopic() {
        SourceRecord input = row((short) 3, null);
        assertInvalid(input, applyDefault(input), "pixels is NULL");
    }

    @Test
    void wrongPixelCountIsRoutedToInvalidTopic() {
        SourceRecord input = row((short) 3, new byte[783]);
        assertInvalid(input, applyDefault(input), "pixels has 783 bytes, expected 784 (28x28)");
    }

    @Test
    void nullLabelIsRoutedToInvalidTopic() {
        SourceRecord input = row(null, blankImage());
        assertInvalid(input, applyDefault(input), "label is NULL");
    }

    @Test
    void labelAboveRangeIsRoutedToInvalidTopic() {
        SourceRecord input = row((short) 12, blankImage());
        assertInvalid(input, applyDefault(input), "label 12 is outside 0..9");
    }

    @Test
    void negativeLabelIsRoutedToInvalidTopic() {
        SourceRecord input = row((short) -1, blankImage());
        assertInvalid(input, applyDefault(input), "label -1 is outside 0..9");
    }

    @Test
    void nonIntegerLabelIsRoutedToInvalidTopic() {
        Schema schema = SchemaBuilder.struct().field("label", Schema.STRING_SCHEMA)
                .field("pixels", Schema.BYTES_SCHEMA).build();
        SourceRecord input = record(schema, new Struct(schema).put("label", "seven").put("pixels", blankImage()));
        assertInvalid(input, applyDefault(input), "label is not an integer but String");
    }

    @Test
    void pixelsThatAreNotBytesAreRoutedToInvalidTopic() {
        Schema schema = SchemaBuilder.struct().field("label", Schema.INT16_SCHEMA)
                .field("pixels", Schema.STRING_SCHEMA).build();
        SourceRecord input = record(schema, new Struct(schema).put("label", (short) 1).put("pixels", "0,0"));
        assertInvalid(input, applyDefault(input), "pixels is not bytes but String");
    }

    @Test
    void valueThatIsNotAStructIsRoutedToInvalidTopicUnchanged() {
        SourceRecord input = record(Schema.STRING_SCHEMA, "7;0,0,0");

        SourceRecord output = applyDefault(input);

        assertInvalid(input, output, "value is not a Struct but String");
        assertEquals("7;0,0,0", output.value());
    }

    @Test
    void missingLabelFieldIsRoutedToInvalidTopic() {
        Schema schema = SchemaBuilder.struct().field("pixels", Schema.BYTES_SCHEMA).build();
        SourceRecord input = record(schema, new Struct(schema).put("pixels", blankImage()));
        assertInvalid(input, applyDefault(input), "missing field 'label'");
    }

    @Test
    void missingPixelsFieldIsRoutedToInvalidTopic() {
        Schema schema = SchemaBuilder.struct().field("label", Schema.INT16_SCHEMA).build();
        SourceRecord input = record(schema, new Struct(schema).put("label", (short) 1));
        assertInvalid(input, applyDefault(input), "missing field 'pixels'");
    }

    @Test
    void invalidRowKeepsItsContentAsJson() {
        byte[] pixels = {1, 2, (byte) 0xFF};
        SourceRecord output = applyDefault(row((short) 12, pixels));

        String expected = "{\"id\":42,\"label\":12,\"pixels\":\"" + Base64.getEncoder().encodeToString(pixels) + "\"}";
        assertEquals(expected, output.value());
        assertEquals(Schema.STRING_SCHEMA, output.valueSchema());
    }

    @Test
    void invalidRowKeepsExistingHeadersAndInputHeadersAreUntouched() {
        SourceRecord input = row(null, blankImage());

        SourceRecord output = applyDefault(input);

        assertEquals("test", output.headers().lastWithName("origin").value());
        assertNull(errorOf(input));
    }

    @Test
    void invalidTopicSuffixIsConfigurable() {
        transform.configure(Map.of("invalid.topic.suffix", "-dlq"));

        SourceRecord output = transform.apply(row(null, blankImage()));

        assertEquals(TOPIC + "-dlq", output.topic());
    }

    @Test
    void unrecognisedStructPassesThroughUnchanged() {
        Schema heartbeat = SchemaBuilder.struct().name("io.debezium.connector.common.Heartbeat")
                .field("ts_ms", Schema.INT64_SCHEMA).build();
        SourceRecord input = record(heartbeat, new Struct(heartbeat).put("ts_ms", 1L));

        assertSame(input, applyDefault(input));
    }

    @Test
    void customFieldNamesAndImageSizeAreUsed() {
        Schema schema = SchemaBuilder.struct().field("digit", Schema.INT32_SCHEMA)
                .field("image", Schema.BYTES_SCHEMA).build();
        transform.configure(Map.of("label.field", "digit", "pixels.field", "image",
                "image.width", "2", "image.height", "2", "label.min", "1", "label.max", "3"));

        SourceRecord output = transform.apply(record(schema,
                new Struct(schema).put("digit", 3).put("image", new byte[] {0, 1, 2, (byte) 200})));

        assertEquals("3", output.key());
        assertEquals("0,1,2,200", output.value());
    }

    @Test
    void upstreamAliasNamesAreAccepted() {
        Schema schema = SchemaBuilder.struct().field("digit", Schema.INT16_SCHEMA)
                .field("image", Schema.BYTES_SCHEMA).build();
        transform.configure(Map.of("label_column", "digit", "pixels_column", "image"));

        SourceRecord output = transform.apply(record(schema,
                new Struct(schema).put("digit", (short) 5).put("image", blankImage())));

        assertEquals("5", output.key());
        assertEquals(TOPIC, output.topic());
    }

    @Test
    void aliasConflictingWithCanonicalNameFailsInConfigure() {
        Map<String, String> props = Map.of("label.field", "label", "label_column", "digit");

        ConfigException error = assertThrows(ConfigException.class, () -> transform.configure(props));

        assertTrue(error.getMessage().contains("label_column"), error.getMessage());
    }

    @Test
    void defaultsMatchTheDataContract() {
        transform.configure(Map.of());

        Map<String, Object> settings = transform.settings();

        assertEquals("label", settings.get("label.field"));
        assertEquals("pixels", settings.get("pixels.field"));
        assertEquals("id", settings.get("id.field"));
        assertEquals(784, settings.get("pixel.count"));
        assertEquals(0, settings.get("label.min"));
        assertEquals(9, settings.get("label.max"));
        assertEquals(".invalid", settings.get("invalid.topic.suffix"));
        assertEquals(MnistToCsv.NullValueHandling.PASSTHROUGH, settings.get("null.value.handling"));
    }

    @Test
    void nonNumericImageWidthFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("image.width", "wide"), "image.width");
    }

    @Test
    void zeroImageHeightFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("image.height", "0"), "image.height");
    }

    @Test
    void unknownNullHandlingFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("null.value.handling", "explode"), "null.value.handling");
    }

    @Test
    void emptyInvalidSuffixFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("invalid.topic.suffix", ""), "invalid.topic.suffix");
    }

    @Test
    void emptyLabelFieldFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("label.field", ""), "label.field");
    }

    @Test
    void labelMinAboveLabelMaxFailsInConfigureNamingTheOption() {
        assertConfigError(Map.of("label.min", "5", "label.max", "2"), "label.max");
    }

    @Test
    void configDefDocumentsEveryOption() {
        for (String name : MnistToCsv.CONFIG_DEF.names()) {
            String doc = MnistToCsv.CONFIG_DEF.configKeys().get(name).documentation;
            assertTrue(doc != null && !doc.isBlank(), name + " has no doc string");
        }
        assertSame(MnistToCsv.CONFIG_DEF, transform.config());
    }

    @Test
    void validRowCarriesItsTableAndIdInStringHeaders() {
        SourceRecord output = applyDefault(row((short) 7, blankImage()));

        assertEquals("mnist_train", headerOf(output, MnistToCsv.TABLE_HEADER));
        assertEquals("42", headerOf(output, MnistToCsv.ID_HEADER));
        assertEquals(Schema.STRING_SCHEMA, output.headers().lastWithName(MnistToCsv.ID_HEADER).schema());
        assertEquals("test", headerOf(output, "origin"));
        assertEquals(3, output.headers().size(), "origin, mnist.table, mnist.id and nothing else");
        assertEquals("7", output.key());
        assertEquals(String.join(",", Collections.nCopies(784, "0")), output.value());
    }

    @Test
    void invalidRowCarriesTheTableOfItsOriginalTopicAndItsId() {
        SourceRecord output = applyDefault(row((short) 12, blankImage()));

        assertEquals(TOPIC + ".invalid", output.topic());
        assertEquals("label 12 is outside 0..9", errorOf(output));
        assertEquals("mnist_train", headerOf(output, MnistToCsv.TABLE_HEADER));
        assertEquals("42", headerOf(output, MnistToCsv.ID_HEADER));
    }

    @Test
    void valueThatIsNotAStructGetsTheTableButNoId() {
        SourceRecord output = applyDefault(record(Schema.STRING_SCHEMA, "7;0,0,0"));

        assertEquals("mnist_train", headerOf(output, MnistToCsv.TABLE_HEADER));
        assertNull(output.headers().lastWithName(MnistToCsv.ID_HEADER));
    }

    @Test
    void rowWithoutIdFieldIsConvertedWithTheTableButNoIdHeader() {
        Schema schema = SchemaBuilder.struct().field("label", Schema.INT16_SCHEMA)
                .field("pixels", Schema.BYTES_SCHEMA).build();

        SourceRecord output = applyDefault(record(schema,
                new Struct(schema).put("label", (short) 4).put("pixels", blankImage())));

        assertEquals(TOPIC, output.topic());
        assertEquals("4", output.key());
        assertEquals("mnist_train", headerOf(output, MnistToCsv.TABLE_HEADER));
        assertNull(output.headers().lastWithName(MnistToCsv.ID_HEADER));
    }

    @Test
    void nullOrNonIntegerIdGivesNoIdHeader() {
        Schema schema = SchemaBuilder.struct().field("id", Schema.OPTIONAL_STRING_SCHEMA)
                .field("label", Schema.INT16_SCHEMA).field("pixels", Schema.BYTES_SCHEMA).build();
        transform.configure(Map.of());

        for (String id : new String[] {null, "a1"}) {
            SourceRecord output = transform.apply(record(schema,
                    new Struct(schema).put("id", id).put("label", (short) 4).put("pixels", blankImage())));

            assertEquals("4", output.key());
            assertNull(output.headers().lastWithName(MnistToCsv.ID_HEADER), "id " + id);
        }
    }

    @Test
    void bigintIdIsWrittenInFull() {
        Schema schema = SchemaBuilder.struct().field("id", Schema.INT64_SCHEMA)
                .field("label", Schema.INT16_SCHEMA).field("pixels", Schema.BYTES_SCHEMA).build();

        SourceRecord output = applyDefault(record(schema, new Struct(schema)
                .put("id", 9_007_199_254_740_993L).put("label", (short) 1).put("pixels", blankImage())));

        assertEquals("9007199254740993", headerOf(output, MnistToCsv.ID_HEADER));
    }

    @Test
    void idFieldIsConfigurable() {
        Schema schema = SchemaBuilder.struct().field("image_id", Schema.INT32_SCHEMA)
                .field("label", Schema.INT16_SCHEMA).field("pixels", Schema.BYTES_SCHEMA).build();
        transform.configure(Map.of("id.field", "image_id"));

        SourceRecord output = transform.apply(record(schema,
                new Struct(schema).put("image_id", 5).put("label", (short) 1).put("pixels", blankImage())));

        assertEquals("5", headerOf(output, MnistToCsv.ID_HEADER));
    }

    @Test
    void tombstonePassesThroughWithoutSourceHeaders() {
        SourceRecord tombstone = record(ROW_SCHEMA, null);

        SourceRecord output = applyDefault(tombstone);

        assertSame(tombstone, output);
        assertNull(output.headers().lastWithName(MnistToCsv.TABLE_HEADER));
        assertNull(output.headers().lastWithName(MnistToCsv.ID_HEADER));
    }

    @Test
    void tableIsTheLastPartOfTheTopic() {
        assertEquals("mnist_test", MnistToCsv.tableOf("tf.public.mnist_test"));
        assertEquals("mnist_test", MnistToCsv.tableOf("my.app.public.mnist_test"));
        assertEquals("mnist_test", MnistToCsv.tableOf("mnist_test"));
    }

    /** What a plain consumer reads: the worker's default header converter writes headers as decimal text. */
    @Test
    void headersReachKafkaAsDecimalTextWithTheDefaultHeaderConverter() {
        SourceRecord output = applyDefault(row((short) 7, blankImage()));
        // As ExtractNewRecordState's add.headers=source.ts_ms adds it: the field's INT64 schema, made optional.
        output.headers().add("__source_ts_ms", 1_700_000_000_123L, Schema.OPTIONAL_INT64_SCHEMA);

        try (SimpleHeaderConverter converter = new SimpleHeaderConverter()) {
            converter.configure(Map.of());
            assertArrayEquals("42".getBytes(StandardCharsets.UTF_8), bytesOf(converter, output, MnistToCsv.ID_HEADER));
            assertArrayEquals("mnist_train".getBytes(StandardCharsets.UTF_8),
                    bytesOf(converter, output, MnistToCsv.TABLE_HEADER));
            assertArrayEquals("1700000000123".getBytes(StandardCharsets.UTF_8),
                    bytesOf(converter, output, "__source_ts_ms"));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static byte[] bytesOf(SimpleHeaderConverter converter, SourceRecord record, String name) {
        Header header = record.headers().lastWithName(name);
        return converter.fromConnectHeader(record.topic(), name, header.schema(), header.value());
    }

    private void assertConfigError(Map<String, String> props, String option) {
        ConfigException error = assertThrows(ConfigException.class, () -> transform.configure(new HashMap<>(props)));
        assertTrue(error.getMessage().contains(option), error.getMessage());
    }
}
