package org.mobileskin.core

import java.io.File
import kotlin.system.exitProcess

/**
 * Tests of the app's pure-Kotlin core against the golden cases Python writes
 * (`python -m mobile_skin.android_golden`), plus unit tests of the JSON reader, spec checks,
 * top-k and the result text; [appLogicTests] (AppLogicTests.kt) covers the app logic of issue 15.
 *
 * Tolerances: metadata vectors must match Python's float32 values exactly (bit for bit), and so
 * must the resized pixels ([PIXEL_TOLERANCE] 0, every value identical) and the EXIF-oriented
 * images; photo-sized resizes (up to 4032 x 3024) must give the same bytes (SHA-256). The
 * unrounded resize must be within [FLOAT_TOLERANCE] of TensorFlow's (stored to 4 decimals).
 *
 * [committedDeviceGoldenTests] (DeviceGoldenFileTests.kt) parses the instrumented test's committed
 * golden.
 *
 * Usage: `CoreTestsKt [GOLDEN_DIR [DEVICE_GOLDEN_DIR]]` (defaults `src/test/resources/golden` and
 * [DEVICE_GOLDEN_DIR]); exits 1 on a failure.
 */
const val PIXEL_TOLERANCE = 0.0f
const val MIN_EXACT_FRACTION = 1.0
const val FLOAT_TOLERANCE = 1e-3

fun main(args: Array<String>) {
    val golden = File(if (args.isNotEmpty()) args[0] else "src/test/resources/golden")
    val t = TestRunner()
    jsonTests(t)
    specTests(t, golden)
    metadataTests(t, golden)
    imageTests(t, golden)
    orientationTests(t, golden)
    productionTests(t, golden)
    topKTests(t, golden)
    appLogicTests(t)
    committedDeviceGoldenTests(t, File(if (args.size > 1) args[1] else DEVICE_GOLDEN_DIR))
    exitProcess(t.finish())
}

private fun read(golden: File, name: String): String {
    val file = File(golden, name)
    if (!file.isFile) throw IllegalStateException("golden file missing: $file")
    return file.readText()
}

private fun goldenSpec(golden: File): ModelSpec = ModelSpec.parse(read(golden, ModelSpec.SPEC_FILE))

private fun obj(v: Any?): Map<String, Any?> = JsonPath.obj(v, "test")

private fun list(v: Any?): List<Any?> = JsonPath.list(v, "test")

// ---------------------------------------------------------------------------------------- JSON

private fun jsonTests(t: TestRunner) {
    t.test("json: nested document") {
        val doc = obj(Json.parse(""" { "a": [1, -2.5, 3e2, true, false, null], "b": {"c": "d"}, "e": [] } """))
        assertEquals(listOf(1.0, -2.5, 300.0, true, false, null), doc["a"], "a")
        assertEquals(mapOf("c" to "d"), doc["b"], "b")
        assertEquals(emptyList<Any?>(), doc["e"], "e")
        assertEquals(listOf("a", "b", "e"), doc.keys.toList(), "key order")
    }
    t.test("json: string escapes") {
        val s = Json.parse(""""q\" b\\ s\/ n\n t\t u\u00e9\u0041"""")
        assertEquals("q\" b\\ s/ n\n t\t u\u00e9A", s, "string")
    }
    t.test("json: float32 values written by Python round-trip exactly") {
        val v = Json.parse("[0.44999998807907104, 0.5166670083999634, 1.2000000476837158]") as List<*>
        assertEquals(0.45f, (v[0] as Double).toFloat(), "0.45")
        assertEquals(0.516667f, (v[1] as Double).toFloat(), "0.516667")
        assertEquals(1.2f, (v[2] as Double).toFloat(), "1.2")
    }
    t.test("json: malformed input is rejected") {
        for (bad in listOf("", "{", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1} x", "01", "1.", "-", "\"abc", "tru", "{a:1}", "\"\\x\"")) {
            assertThrows<JsonException>("parse '$bad'") { Json.parse(bad) }
        }
    }
}

// ---------------------------------------------------------------------------------------- spec

private fun specTests(t: TestRunner, golden: File) {
    t.test("spec: golden model_spec.json") {
        val spec = goldenSpec(golden)
        assertEquals(listOf("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"), spec.classes, "classes")
        assertEquals(32, spec.imageSize, "image_size")
        assertEquals(listOf("image", "metadata"), spec.inputNames, "inputs")
        assertEquals("melanoma (mel)", spec.displayName(4), "display name")
        assertEquals("melanocytic nevus (nv)", spec.displayName(5), "display name")
        val enc = spec.encoder ?: fail("no metadata encoder")
        assertEquals(20, enc.size, "metadata size")
        assertEquals(100.0, enc.ageScale, "age_scale")
        assertEquals(0.516667, enc.ageUnknownValue, "age_unknown_value")
        assertEquals(listOf("male", "female", "unknown"), enc.sexes, "sexes")
        assertEquals(15, enc.localizations.size, "localizations")
        assertEquals(
            listOf(0, 1, 2, 5),
            listOf(enc.ageOffset, enc.ageMissingOffset, enc.sexOffset, enc.localizationOffset),
            "offsets"
        )
    }
    t.test("spec: calibration temperature is read, absent or empty means raw softmax") {
        val calibrated = ModelSpec.parse(specJson(calibration = """{"method": "temperature", "temperature": 1.4567}"""))
        assertEquals(1.4567, calibrated.calibrationTemperature, "temperature")
        assertEquals("calibrated (temperature 1.46)", calibrated.calibrationLabel, "label")
        for (raw in listOf(specJson(), specJson(calibration = "{}"))) {
            val spec = ModelSpec.parse(raw)
            assertEquals(null, spec.calibrationTemperature, "temperature")
            assertEquals("raw softmax", spec.calibrationLabel, "label")
        }
    }
    t.test("spec: a model without metadata has no encoder") {
        val spec = ModelSpec.parse(specJson(metadata = null))
        assertEquals(null, spec.encoder, "encoder")
        assertEquals(listOf("image"), spec.inputNames, "inputs")
        assertEquals("x", spec.displayName(0), "a code without a full name is shown alone")
    }
    val invalid = listOf(
        "not JSON" to "{",
        "newer format" to specJson(version = 2),
        "int8 image input" to specJson(imageDtype = "uint8"),
        "image shape disagrees with image_size" to specJson(imageShape = "[-1, 64, 64, 3]"),
        "BGR image" to specJson(color = "BGR"),
        "normalised range" to specJson(range = "[-1.0, 1.0]"),
        "metadata size disagrees with vocabularies" to specJson(size = 5),
        "metadata shape disagrees" to specJson(metadataShape = "[-1, 9]"),
        "offsets overlap" to specJson(offsets = """{"age": 0, "sex": 1, "localization": 2}"""),
        "repeated vocabulary word" to specJson(sexes = """["male", "male"]"""),
        "zero age scale" to specJson(ageScale = 0.0),
        "probs shape disagrees with classes" to specJson(probsShape = "[-1, 7]"),
        "zero temperature" to specJson(calibration = """{"temperature": 0.0}"""),
        "temperature not a number" to specJson(calibration = """{"temperature": "hot"}"""),
        "missing classes" to """{"format_version": 1, "image_size": 8, "inputs": {}, "outputs": {}}"""
    )
    for ((name, text) in invalid) {
        t.test("spec: rejects $name") { assertThrows<SpecException>(name) { ModelSpec.parse(text) } }
    }
}

/** A small spec in the layout Python writes, with one field changed per test. */
private fun specJson(
    version: Int = 1,
    imageDtype: String = "float32",
    imageShape: String = "[-1, 8, 8, 3]",
    color: String = "RGB",
    range: String = "[0.0, 255.0]",
    ageScale: Double = 50.0,
    sexes: String = """["female", "male", "unknown"]""",
    size: Int = 7,
    metadataShape: String = "[-1, 7]",
    offsets: String = """{"age": 6, "sex": 0, "localization": 3}""",
    probsShape: String = "[-1, 2]",
    metadata: String? = "default",
    indicator: Boolean = false,
    calibration: String? = null
): String {
    val meta = metadata ?: ""
    val layout = if (indicator) """["sex", "localization", "age", "age_missing"]"""
    else """["sex", "localization", "age"]"""
    val metadataInput = if (meta.isEmpty()) "" else """,
        "metadata": {"shape": $metadataShape, "dtype": "float32", "encoding": {
          "age_scale": $ageScale, "age_unknown_value": 0.25, "sexes": $sexes,
          "localizations": ["b", "a", "unknown"], "layout": $layout,
          "age_missing_indicator": $indicator, "size": $size, "offsets": $offsets}}"""
    return """{
      "format_version": $version, "classes": ["x", "y"], "class_names": {"y": "why"},
      "image_size": 8,
      "inputs": {
        "image": {"shape": $imageShape, "dtype": "$imageDtype", "layout": "NHWC", "color": "$color",
                  "range": $range}$metadataInput
      },
      "outputs": {"probs": {"shape": $probsShape, "dtype": "float32"}}${calibration?.let { ",\n      \"calibration\": $it" } ?: ""}
    }"""
}

// ------------------------------------------------------------------------------------ metadata

private fun metadataTests(t: TestRunner, golden: File) {
    val encoder = goldenSpec(golden).encoder ?: throw IllegalStateException("golden spec has no metadata")
    val doc = obj(Json.parse(read(golden, "metadata_cases.json")))
    t.test("metadata: golden vector size") { assertEquals(encoder.size, (doc["size"] as Double).toInt(), "size") }
    for (case in list(doc["valid"]).map { obj(it) }) {
        t.test("metadata: ${case["name"]} matches Python bit for bit") {
            val got = encoder.encode(case["age"] as Double?, case["sex"] as String?, case["site"] as String?)
            val want = list(case["expected"]).map { (it as Double).toFloat() }
            assertEquals(want.size, got.size, "length")
            for (i in want.indices) {
                if (java.lang.Float.floatToIntBits(want[i]) != java.lang.Float.floatToIntBits(got[i])) {
                    fail("element $i: expected ${want[i]}, got ${got[i]} (vector ${got.toList()})")
                }
            }
        }
    }
    for (case in list(doc["invalid"]).map { obj(it) }) {
        t.test("metadata: ${case["name"]} is rejected like Python") {
            val err = assertThrows<MetadataException>(case["name"] as String) {
                encoder.encode(case["age"] as Double?, case["sex"] as String?, case["site"] as String?)
            }
            assertEquals(case["field"], err.field, "field")
        }
    }
    t.test("metadata: vocabularies, scale and offsets come from the spec") {
        val enc = ModelSpec.parse(specJson()).encoder ?: fail("no encoder")
        // layout [sex(0..2) | localization(3..5) | age(6)], age_scale 50, unknown age 0.25
        assertEquals(listOf(0f, 1f, 0f, 1f, 0f, 0f, 0.6f), enc.encode(30.0, "Male", "b").toList(), "vector")
        assertEquals(listOf(0f, 0f, 1f, 0f, 0f, 1f, 0.25f), enc.encode(null, null, " ").toList(), "unknowns")
        assertThrows<MetadataException>("'back' is not in this spec") { enc.encode(30.0, "male", "back") }
    }
    t.test("metadata: NaN age is unknown, like Python") {
        assertEquals(0.516667f, encoder.encode(Double.NaN, "male", "back")[0], "age")
        assertEquals(1.0f, encoder.encode(Double.NaN, "male", "back")[1], "missing-age indicator")
    }
    t.test("metadata: the golden spec has the missing-age indicator after the age") {
        assertEquals(20, encoder.size, "size")
        assertEquals(1, encoder.ageMissingOffset, "indicator offset")
        assertEquals(0.0f, encoder.encode(45.0, "male", "back")[1], "known age: indicator off")
        assertEquals(1.0f, encoder.encode(null, "male", "back")[1], "unknown age: indicator on")
    }
    t.test("metadata: which fields the answer ignores") {
        assertEquals(listOf("age", "sex", "localization"), encoder.unknownFields(null, " ", "Unknown"), "all")
        assertEquals(listOf("localization"), encoder.unknownFields(40.0, "female", null), "site")
        assertEquals(emptyList<String>(), encoder.unknownFields(40.0, "female", "back"), "none")
    }
    t.test("metadata: a spec without the indicator (older models) keeps the 19-wide layout") {
        val enc = ModelSpec.parse(specJson()).encoder ?: fail("no encoder")
        assertEquals(null, enc.ageMissingOffset, "no indicator")
        val flagged = specJson(
            size = 8, metadataShape = "[-1, 8]", indicator = true,
            offsets = """{"age": 6, "age_missing": 7, "sex": 0, "localization": 3}"""
        )
        val withFlag = ModelSpec.parse(flagged).encoder ?: fail("no encoder")
        assertEquals(listOf(0f, 0f, 1f, 0f, 0f, 1f, 0.25f, 1f), withFlag.encode(null, null, " ").toList(), "unknowns")
        assertThrows<SpecException>("indicator offset clashes") {
            ModelSpec.parse(specJson(size = 8, metadataShape = "[-1, 8]", indicator = true,
                offsets = """{"age": 6, "age_missing": 6, "sex": 0, "localization": 3}"""))
        }
    }
    t.test("metadata: parseAge") {
        assertEquals(null, MetadataEncoder.parseAge(null), "null")
        assertEquals(null, MetadataEncoder.parseAge("  "), "blank")
        assertEquals(42.0, MetadataEncoder.parseAge(" 42 "), "42")
        assertEquals(37.5, MetadataEncoder.parseAge("37.5"), "37.5")
        val err = assertThrows<MetadataException>("'abc'") { MetadataEncoder.parseAge("abc") }
        assertEquals("age", err.field, "field")
    }
}

// --------------------------------------------------------------------------------------- image

private fun imageTests(t: TestRunner, golden: File) {
    val doc = obj(Json.parse(read(golden, "image_cases.json")))
    var worstPixel = 0.0f
    var worstFloat = 0.0
    var exact = 0
    var total = 0
    for (case in list(doc["cases"]).map { obj(it) }) {
        val name = case["name"] as String
        val width = (case["width"] as Double).toInt()
        val height = (case["height"] as Double).toInt()
        val size = (case["size"] as Double).toInt()
        val argb = flattenInts(case["argb"])
        val expected = flattenInts(case["expected"])
        val unrounded = list(case["resized_float"]).flatMap { row -> list(row).map { it as Double } }
        val pre = ImagePreprocessor(size)
        t.test("image: $name pixels match TensorFlow") {
            assertEquals(width * height, argb.size, "input pixels")
            val got = pre.toModelInput(argb, width, height)
            assertEquals(size * size * 3, got.size, "output length")
            var caseExact = 0
            var caseWorst = 0.0f
            for (i in got.indices) {
                val d = Math.abs(got[i] - expected[i])
                if (d == 0.0f) caseExact++
                caseWorst = Math.max(caseWorst, d)
                assertTrue(got[i] == Math.rint(got[i].toDouble()).toFloat() && got[i] in 0.0f..255.0f) {
                    "value ${got[i]} at $i is not an integer level in 0..255"
                }
            }
            worstPixel = Math.max(worstPixel, caseWorst)
            exact += caseExact
            total += got.size
            val fraction = caseExact.toDouble() / got.size
            println("  $name: max |diff| = $caseWorst level, exact ${"%.4f".format(fraction)} of ${got.size}")
            assertTrue(caseWorst <= PIXEL_TOLERANCE) { "max |diff| $caseWorst > $PIXEL_TOLERANCE" }
            assertTrue(fraction >= MIN_EXACT_FRACTION) { "only $fraction of the values are exact" }
        }
        t.test("image: $name unrounded resize matches TensorFlow") {
            val got = pre.resize(argb, width, height)
            var worst = 0.0
            for (i in got.indices) worst = Math.max(worst, Math.abs(got[i] - unrounded[i]))
            worstFloat = Math.max(worstFloat, worst)
            println("  $name: unrounded max |diff| = ${"%.2e".format(worst)}")
            assertTrue(worst <= FLOAT_TOLERANCE) { "max |diff| $worst > $FLOAT_TOLERANCE" }
        }
        t.test("image: $name ignores alpha") {
            val opaque = IntArray(argb.size) { argb[it] or (0xFF shl 24) }
            val clear = IntArray(argb.size) { argb[it] and 0x00FFFFFF }
            val want = pre.toModelInput(argb, width, height).toList()
            assertEquals(want, pre.toModelInput(opaque, width, height).toList(), "opaque")
            assertEquals(want, pre.toModelInput(clear, width, height).toList(), "transparent")
        }
    }
    t.test("image: a flat colour stays flat, up and down") {
        for ((w, h, s) in listOf(Triple(97, 61, 24), Triple(23, 17, 32), Triple(5, 300, 7))) {
            val argb = IntArray(w * h) { (0x80 shl 24) or (200 shl 16) or (17 shl 8) or 255 }
            val out = ImagePreprocessor(s).toModelInput(argb, w, h)
            for (i in out.indices) assertEquals(listOf(200f, 17f, 255f)[i % 3], out[i], "${w}x$h->$s [$i]")
        }
    }
    t.test("image: RGB order and HWC layout") {
        // 2x1 image, red then blue, to 2x2: same width (identity in x), one row repeated in y.
        val argb = intArrayOf(0xFFFF0000.toInt(), 0xFF0000FF.toInt())
        val out = ImagePreprocessor(2).resize(argb, 2, 1)
        assertEquals(listOf(255f, 0f, 0f, 0f, 0f, 255f, 255f, 0f, 0f, 0f, 0f, 255f), out.toList(), "pixels")
    }
    t.test("image: filter weights sum to one") {
        for ((outSize, inSize) in listOf(32 to 23, 24 to 97, 224 to 600, 224 to 4000, 3 to 1, 16 to 16)) {
            val spans = ImagePreprocessor.Spans.compute(outSize, inSize)
            for (x in 0 until outSize) {
                var sum = 0.0
                for (k in 0 until spans.spanSize) sum += spans.weights[x * spans.spanSize + k]
                assertTrue(Math.abs(sum - 1.0) < 1e-5) { "$inSize->$outSize, output $x: weights sum to $sum" }
            }
        }
    }
    t.test("image: bad input is rejected") {
        assertThrows<IllegalArgumentException>("empty") { ImagePreprocessor(4).toModelInput(IntArray(0), 0, 0) }
        assertThrows<IllegalArgumentException>("short") { ImagePreprocessor(4).toModelInput(IntArray(3), 2, 2) }
        assertThrows<IllegalArgumentException>("size 0") { ImagePreprocessor(0) }
    }
    t.test("image: summary") {
        println(
            "  all cases: max |diff| = $worstPixel level (tolerance $PIXEL_TOLERANCE), exact $exact of $total; " +
                "unrounded max |diff| = ${"%.2e".format(worstFloat)} (tolerance $FLOAT_TOLERANCE)"
        )
        assertTrue(total > 0) { "no image case ran" }
    }
}

private fun flattenInts(rows: Any?): IntArray =
    list(rows).flatMap { row -> list(row).map { (it as Double).toLong().toInt() } }.toIntArray()

// --------------------------------------------------------------------------------------- top-k

private fun topKTests(t: TestRunner, golden: File) {
    t.test("topk: largest first") {
        assertEquals(listOf(1, 3, 0), TopK.indices(floatArrayOf(0.2f, 0.5f, 0.05f, 0.25f), 3).toList(), "order")
    }
    t.test("topk: ties go to the lower index") {
        assertEquals(listOf(1, 2, 4), TopK.indices(floatArrayOf(0.1f, 0.3f, 0.3f, 0.0f, 0.3f), 3).toList(), "ties")
        assertEquals(listOf(0, 1, 2), TopK.indices(FloatArray(7), 3).toList(), "all equal")
    }
    t.test("topk: k larger than the classes, k = 0, NaN last") {
        assertEquals(listOf(1, 0), TopK.indices(floatArrayOf(0.4f, 0.6f), 5).toList(), "k > n")
        assertEquals(emptyList<Int>(), TopK.indices(floatArrayOf(0.4f, 0.6f), 0).toList(), "k = 0")
        assertEquals(listOf(2, 0, 1), TopK.indices(floatArrayOf(0.1f, Float.NaN, 0.7f), 3).toList(), "NaN")
        assertThrows<IllegalArgumentException>("k < 0") { TopK.indices(floatArrayOf(1f), -1) }
    }
    t.test("topk: result text with full names, probabilities and time") {
        val spec = goldenSpec(golden)
        val probs = floatArrayOf(0.01f, 0.02f, 0.05f, 0.01f, 0.62f, 0.28f, 0.01f)
        val text = TopK.format(spec, probs, 3, 12.34)
        val want = listOf(
            "1. melanoma (mel): 62.0 %",
            "2. melanocytic nevus (nv): 28.0 %",
            "3. benign keratosis-like lesion (bkl): 5.0 %",
            "Inference: 12.3 ms"
        ).joinToString("\n")
        assertEquals(want, text, "text")
        assertThrows<IllegalArgumentException>("wrong length") { TopK.format(spec, FloatArray(3), 3) }
    }
}

// --------------------------------------------------------------------------------- orientation

private fun orientationTests(t: TestRunner, golden: File) {
    val doc = obj(Json.parse(read(golden, "orientation_cases.json")))
    val width = (doc["width"] as Double).toInt()
    val height = (doc["height"] as Double).toInt()
    val argb = flattenInts(doc["argb"])
    for (case in list(doc["cases"]).map { obj(it) }) {
        val o = (case["orientation"] as Double).toInt()
        t.test("orientation: EXIF $o turns the photo exactly as Python does") {
            val got = Orientation.apply(argb, width, height, o)
            assertEquals((case["width"] as Double).toInt(), got.width, "width")
            assertEquals((case["height"] as Double).toInt(), got.height, "height")
            assertEquals(flattenInts(case["argb"]).toList(), got.argb.toList(), "pixels")
        }
    }
}

// ------------------------------------------------------------------------ photo-sized resizes

/** Python's `android_golden.pattern_image` as ARGB ints (uint64 arithmetic in Long bits). */
internal fun patternImage(width: Int, height: Int, salt: Int): IntArray {
    val mask = 0xFFFFFFFFL
    val out = IntArray(width * height)
    for (y in 0 until height) {
        for (x in 0 until width) {
            var n = (x.toLong() * 73856093L) xor (y.toLong() * 19349663L) xor (salt.toLong() * 83492791L)
            n = (n * 2654435761L) and mask
            n = n xor (n ushr 15)
            n = (n * 2246822519L) and mask
            n = n xor (n ushr 13)
            val alpha = ((n ushr 24) and 255L).toInt()
            val red = (x * 255) / Math.max(width - 1, 1)
            val green = if (((x / 4) + (y / 4)) % 2 == 0) 255 else 0
            val blue = ((n ushr 8) and 255L).toInt()
            out[y * width + x] = (alpha shl 24) or (red shl 16) or (green shl 8) or blue
        }
    }
    return out
}

private fun productionTests(t: TestRunner, golden: File) {
    val doc = obj(Json.parse(read(golden, "production_cases.json")))
    for (case in list(doc["cases"]).map { obj(it) }) {
        val name = case["name"] as String
        t.test("image: $name gives Python's bytes exactly") {
            val width = (case["width"] as Double).toInt()
            val height = (case["height"] as Double).toInt()
            val size = (case["size"] as Double).toInt()
            val pixels = ImagePreprocessor(size).toModelInput(
                patternImage(width, height, (case["salt"] as Double).toInt()), width, height
            )
            val bytes = ByteArray(pixels.size) { pixels[it].toInt().toByte() }
            val rowSums = LongArray(size) { row ->
                var sum = 0L
                for (i in row * size * 3 until (row + 1) * size * 3) sum += pixels[i].toLong()
                sum
            }
            val want = list(case["row_sums"]).map { (it as Double).toLong() }
            val firstBad = want.indices.firstOrNull { want[it] != rowSums[it] }
            assertEquals(null, firstBad, "first row whose sum differs")
            val digest = java.security.MessageDigest.getInstance("SHA-256").digest(bytes)
            val hex = StringBuilder()
            for (b in digest) hex.append(String.format("%02x", b))
            assertEquals(case["sha256"], hex.toString(), "sha256 of the resized bytes")
        }
    }
}
