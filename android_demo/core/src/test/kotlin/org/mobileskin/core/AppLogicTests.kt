package org.mobileskin.core

/**
 * Tests of the app-side logic that issue 15 moved into the core: latency statistics and the
 * benchmark plan, inference settings, the export choice from parity.json, model_source.json, the
 * device golden, and the main screen's state rules.
 */
fun appLogicTests(t: TestRunner) {
    latencyTests(t)
    settingsTests(t)
    exportChoiceTests(t)
    deviceGoldenTests(t)
    screenStateTests(t)
}

private fun assertNear(expected: Double, actual: Double, what: String, tol: Double = 1e-9) {
    if (Math.abs(expected - actual) > tol) fail("$what: expected <$expected>, got <$actual>")
}

// ------------------------------------------------------------------------------------- latency

private fun latencyTests(t: TestRunner) {
    t.test("latency: median and p90 interpolate like numpy.percentile") {
        // numpy: np.median([5,1,4,2,3]) = 3, np.percentile(..., 90) = 4.6
        val s = LatencyStats.of(listOf(5.0, 1.0, 4.0, 2.0, 3.0))
        assertNear(3.0, s.medianMs, "median")
        assertNear(4.6, s.p90Ms, "p90")
        assertNear(1.0, s.minMs, "min")
        assertNear(5.0, s.maxMs, "max")
        assertNear(3.0, s.meanMs, "mean")
        assertEquals(5, s.runs, "runs")
    }
    t.test("latency: even count, median between the two middle runs") {
        // np.median([1,2,3,10]) = 2.5, np.percentile([1,2,3,10], 90) = 7.9
        val s = LatencyStats.of(listOf(10.0, 1.0, 3.0, 2.0))
        assertNear(2.5, s.medianMs, "median")
        assertNear(7.9, s.p90Ms, "p90")
    }
    t.test("latency: one run is its own median and p90") {
        val s = LatencyStats.of(listOf(7.25))
        assertNear(7.25, s.medianMs, "median")
        assertNear(7.25, s.p90Ms, "p90")
    }
    t.test("latency: 100 runs 1..100 give median 50.5 and p90 90.1") {
        val s = LatencyStats.of((100 downTo 1).map { it.toDouble() })
        assertNear(50.5, s.medianMs, "median")
        assertNear(90.1, s.p90Ms, "p90")
    }
    t.test("latency: percentile ends and bad input") {
        val sorted = listOf(1.0, 2.0, 4.0)
        assertNear(1.0, LatencyStats.percentile(sorted, 0.0), "p0")
        assertNear(4.0, LatencyStats.percentile(sorted, 100.0), "p100")
        assertThrows<IllegalArgumentException>("empty") { LatencyStats.of(emptyList()) }
        assertThrows<IllegalArgumentException>("NaN") { LatencyStats.of(listOf(1.0, Double.NaN)) }
        assertThrows<IllegalArgumentException>("negative") { LatencyStats.of(listOf(-1.0)) }
        assertThrows<IllegalArgumentException>("q > 100") { LatencyStats.percentile(sorted, 101.0) }
        assertThrows<IllegalArgumentException>("unsorted") { LatencyStats.percentile(listOf(2.0, 1.0), 50.0) }
    }
    t.test("benchmark plan: defaults, ranges, field names") {
        val plan = BenchmarkPlan.create(" 5 ", "50")
        assertEquals(5, plan.warmup, "warmup")
        assertEquals(50, plan.runs, "runs")
        assertEquals(listOf("CPU x1", "CPU x2", "CPU x4", "GPU"), plan.configurations.map { it.label() }, "configurations")
        assertEquals(0, BenchmarkPlan.create("0", "1").warmup, "zero warm-up allowed")
        val bad = assertThrows<IllegalArgumentException>("runs 0") { BenchmarkPlan.create("1", "0") }
        assertTrue(bad.message!!.startsWith("timed runs")) { "message names the field: ${bad.message}" }
        assertThrows<IllegalArgumentException>("runs too many") { BenchmarkPlan.create("1", "1001") }
        assertThrows<IllegalArgumentException>("warm-up negative") { BenchmarkPlan.create("-1", "10") }
        assertThrows<IllegalArgumentException>("warm-up text") { BenchmarkPlan.create("five", "10") }
        assertThrows<IllegalArgumentException>("no configurations") { BenchmarkPlan.create("1", "1", emptyList()) }
    }
    t.test("benchmark table: one row per configuration, failures named") {
        val rows = listOf(
            BenchmarkRow(InferenceSettings(Hardware.CPU, 2), LatencyStats.of(listOf(1.0, 2.0, 3.0)), null),
            BenchmarkRow(InferenceSettings(Hardware.GPU, 4), null, "GPU accelerator not available")
        )
        val text = BenchmarkRow.format(rows, 3, 3)
        val lines = text.split("\n")
        assertEquals(4, lines.size, "lines")
        assertEquals("3 warm-up + 3 timed runs each; ms per run", lines[0], "header")
        assertEquals("CPU x2         2.00     2.80     1.00     3.00", lines[2], "CPU row")
        assertEquals("GPU        failed: GPU accelerator not available", lines[3], "GPU row")
    }
}

// ------------------------------------------------------------------------------------ settings

private fun settingsTests(t: TestRunner) {
    t.test("settings: defaults follow the core count") {
        assertEquals("CPU x4", InferenceSettings.defaults(8).label(), "8 cores")
        assertEquals("CPU x2", InferenceSettings.defaults(2).label(), "2 cores")
        assertEquals("CPU x1", InferenceSettings.defaults(0).label(), "unknown cores")
        assertEquals(listOf(1, 2, 3), InferenceSettings.threadChoices(3), "choices on 3 cores")
        assertEquals(8, InferenceSettings.threadChoices(16).size, "choices capped at 8")
    }
    t.test("settings: validation names the field") {
        assertEquals(InferenceSettings(Hardware.GPU, 2), InferenceSettings.validated(" gpu ", 2, 8), "gpu")
        val hw = assertThrows<IllegalArgumentException>("NPU") { InferenceSettings.validated("NPU", 2, 8) }
        assertTrue(hw.message!!.startsWith("hardware")) { "names hardware: ${hw.message}" }
        val th = assertThrows<IllegalArgumentException>("too many threads") { InferenceSettings.validated("CPU", 8, 4) }
        assertTrue(th.message!!.startsWith("threads")) { "names threads: ${th.message}" }
        assertThrows<IllegalArgumentException>("zero threads") { InferenceSettings.validated("CPU", 0, 4) }
        assertThrows<IllegalArgumentException>("constructor") { InferenceSettings(Hardware.CPU, 9) }
    }
    t.test("settings: stored values that no longer fit fall back to the defaults") {
        assertEquals(InferenceSettings(Hardware.GPU, 1), InferenceSettings.fromStored("GPU", 1, 4), "valid")
        assertEquals(InferenceSettings.defaults(4), InferenceSettings.fromStored(null, null, 4), "missing")
        assertEquals(InferenceSettings.defaults(4), InferenceSettings.fromStored("CPU", 8, 4), "from a bigger phone")
        assertEquals(InferenceSettings.defaults(4), InferenceSettings.fromStored("TPU", 2, 4), "unknown hardware")
    }
}

// ------------------------------------------------------------------------------- export choice

private fun parityJson(vararg rows: String): String = """{"run": "/r", "rows": [${rows.joinToString(", ")}]}"""

private fun row(format: String, status: String, file: String = "model.tflite", size: Double = 3.85): String =
    """{"format": "$format", "status": "$status", "file": "$file", "size_bytes": 1, "size_mb": $size,
        "latency_ms": 1.7, "threads": 2, "splits": {"test": {}}, "reason": "why $format"}"""

private val KERAS_ROW = """{"format": "keras", "status": "REFERENCE", "file": "best.keras", "size_mb": 31.4, "latency_ms": null}"""

private fun exportChoiceTests(t: TestRunner) {
    val all: (String, String) -> Boolean = { _, _ -> true }
    t.test("export: the project's real run, int8 FAIL -> the first PASS in the order") {
        val rows = ParityRow.parseTable(
            parityJson(
                KERAS_ROW,
                row("tflite_int8", "FAIL", "model.FAILED.tflite"),
                row("tflite_dynamic", "PASS"),
                row("tflite_fp16", "PASS")
            ),
            "/r/export/parity.json"
        )
        val choice = ExportChooser.choose(rows, ExportChooser.TFLITE_FORMATS, "/r/export/parity.json", all)
        assertEquals("tflite_dynamic", choice.format, "format")
        assertEquals("model.tflite", choice.file, "file")
        assertEquals("PASS", choice.status, "status")
        assertTrue(choice.reason.startsWith("took tflite_dynamic (PASS, 3.85 MB, 1.7 ms on the export machine)")) { choice.reason }
        assertTrue(choice.reason.contains("skipped tflite_int8: FAIL")) { choice.reason }
        assertTrue(!choice.reason.contains("\n")) { "one line: ${choice.reason}" }
    }
    t.test("export: the committed real run's parity.json -> tflite_dynamic, the line the README shows") {
        val path = "../../reports/ham10000_mnv3_160/parity.json"
        val rows = ParityRow.parseTable(java.io.File(path).readText(), path)
        val choice = ExportChooser.choose(rows, ExportChooser.TFLITE_FORMATS, path, all)
        assertEquals("tflite_dynamic", choice.format, "format")
        assertTrue(choice.reason.startsWith("took tflite_dynamic (PASS, 2.90 MB, 9.4 ms on the export machine)")) { choice.reason }
        assertTrue(choice.reason.contains("skipped tflite_int8: FAIL")) { choice.reason }
    }
    t.test("export: UNVERIFIED and missing rows never count; files must exist") {
        val rows = ParityRow.parseTable(
            parityJson(row("tflite_int8", "UNVERIFIED"), row("tflite_dynamic", "PASS"), row("tflite_fp32", "PASS")),
            "p"
        )
        val choice = ExportChooser.choose(rows, ExportChooser.TFLITE_FORMATS, "p") { format, _ -> format != "tflite_dynamic" }
        assertEquals("tflite_fp32", choice.format, "format")
        assertTrue(choice.reason.contains("tflite_int8: UNVERIFIED")) { choice.reason }
        assertTrue(choice.reason.contains("tflite_fp16: no parity row")) { choice.reason }
        assertTrue(choice.reason.contains("tflite_dynamic: PASS, but")) { choice.reason }
    }
    t.test("export: a PASS row naming a FAILED file is not taken") {
        val rows = ParityRow.parseTable(parityJson(row("tflite_int8", "PASS", "model.FAILED.tflite")), "p")
        assertThrows<ExportChoiceException>("failed file") {
            ExportChooser.choose(rows, listOf("tflite_int8"), "p", all)
        }
    }
    t.test("export: the preference property reorders and restricts") {
        val rows = ParityRow.parseTable(parityJson(row("tflite_int8", "PASS"), row("tflite_fp16", "PASS")), "p")
        val pref = ExportChooser.parsePreference(" tflite_fp16, tflite_int8 ")
        assertEquals(listOf("tflite_fp16", "tflite_int8"), pref, "parsed")
        assertEquals("tflite_fp16", ExportChooser.choose(rows, pref, "p", all).format, "fp16 first")
        assertEquals(ExportChooser.TFLITE_FORMATS, ExportChooser.parsePreference(null), "default")
        assertEquals(ExportChooser.TFLITE_FORMATS, ExportChooser.parsePreference("  "), "blank")
        assertThrows<ExportChoiceException>("typo") { ExportChooser.parsePreference("tflite_dyanmic") }
        assertThrows<ExportChoiceException>("onnx") { ExportChooser.parsePreference("onnx_fp32") }
        assertThrows<ExportChoiceException>("repeat") { ExportChooser.parsePreference("tflite_int8 tflite_int8") }
    }
    t.test("export: nothing passed -> stop with the parity table's path") {
        val rows = ParityRow.parseTable(
            parityJson(KERAS_ROW, row("tflite_int8", "FAIL"), row("onnx_int8", "PASS", "model.onnx")),
            "/runs/x/export/parity.json"
        )
        val err = assertThrows<ExportChoiceException>("none") {
            ExportChooser.choose(rows, ExportChooser.TFLITE_FORMATS, "/runs/x/export/parity.json", all)
        }
        val m = err.message!!
        assertTrue(m.contains("/runs/x/export/parity.json")) { m }
        assertTrue(m.contains("tflite_int8: FAIL")) { m }
        assertTrue(m.contains("onnx_int8: PASS")) { "lists formats outside the preference: $m" }
        assertTrue(!m.contains("keras")) { "the reference row is not a candidate: $m" }
    }
    t.test("export: malformed parity.json is named") {
        assertThrows<ExportChoiceException>("not JSON") { ParityRow.parseTable("{", "p") }
        assertThrows<ExportChoiceException>("no rows") { ParityRow.parseTable("{}", "p") }
        assertThrows<ExportChoiceException>("row without file") { ParityRow.parseTable("""{"rows": [{"format": "x"}]}""", "p") }
        val r = ParityRow.parseTable("""{"rows": [{"format": "tflite_fp32", "file": "model.tflite"}]}""", "p")
        assertEquals("UNVERIFIED", r[0].status, "a row without status is unverified")
        assertEquals(null, r[0].sizeMb, "size")
    }
    t.test("export: an explicit directory is taken unless its row failed") {
        val rows = ParityRow.parseTable(parityJson(row("tflite_int8", "FAIL"), row("tflite_dynamic", "UNVERIFIED")), "p")
        assertThrows<ExportChoiceException>("explicit FAIL") { ExportChooser.explicit("tflite_int8", rows, "p") }
        val unverified = ExportChooser.explicit("tflite_dynamic", rows, "p")
        assertEquals("UNVERIFIED", unverified.status, "status")
        assertTrue(unverified.reason.contains("not checked by the gate")) { unverified.reason }
        assertEquals(null, ExportChooser.explicit("my_model", null, "p").status, "no table")
        assertTrue(ExportChooser.explicit("my_model", null, "p").reason.contains("no parity table")) { "says so" }
    }
    t.test("model_source.json: round trip with quotes and newlines") {
        val src = ModelSource("tflite_dynamic", "PASS", "ab".repeat(32), "took \"it\"\nbecause\t\\")
        val back = ModelSource.parse(src.toJson())
        assertEquals(src.format, back.format, "format")
        assertEquals(src.status, back.status, "status")
        assertEquals(src.modelSha256, back.modelSha256, "sha")
        assertEquals(src.reason, back.reason, "reason")
        assertEquals(null, ModelSource.parse(ModelSource("x", null, "00", "").toJson()).status, "null status")
        assertEquals("\"\\u0001\"", ModelSource.quote("\u0001"), "control character")
    }
}

// --------------------------------------------------------------------------------- device golden

private val SHA_A = "0123456789abcdef".repeat(4)
private val SHA_B = "fedcba9876543210".repeat(4)

private fun goldenJson(
    probs: String = "[0.01, 0.02, 0.05, 0.01, 0.62, 0.28, 0.01]",
    tolerances: String = """{"tflite_int8": {"max_abs_diff": 0.02}, "tflite_fp32": {"max_abs_diff": 0.0001, "same_top1": false}}""",
    version: Int = 1,
    image: String = "input.png",
    age: String = "45.0"
): String = """
{
  "format_version": $version,
  "generator": "test",
  "input": {"image": "$image", "age": $age, "sex": "male", "localization": "back"},
  "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
  "tolerances": $tolerances,
  "expected": {
    "tflite_int8": {"model_sha256": "$SHA_A", "probs": $probs},
    "tflite_fp32": {"model_sha256": "$SHA_B", "probs": $probs}
  }
}
"""

private fun deviceGoldenTests(t: TestRunner) {
    val golden = DeviceGolden.parse(goldenJson())
    val python = floatArrayOf(0.01f, 0.02f, 0.05f, 0.01f, 0.62f, 0.28f, 0.01f)
    t.test("device golden: parse") {
        assertEquals("input.png", golden.imageFile, "image")
        assertEquals(45.0, golden.age, "age")
        assertEquals("male", golden.sex, "sex")
        assertEquals("back", golden.localization, "site")
        assertEquals(7, golden.classes.size, "classes")
        assertEquals(true, golden.tolerances["tflite_int8"]!!.sameTop1, "same_top1 defaults to true")
        assertEquals(false, golden.tolerances["tflite_fp32"]!!.sameTop1, "same_top1 false")
        assertEquals(null, DeviceGolden.parse(goldenJson(age = "null")).age, "unknown age")
    }
    t.test("device golden: within tolerance passes, beyond fails with the worst class") {
        val near = python.copyOf().also { it[4] = 0.635f; it[5] = 0.265f }
        val ok = golden.check("tflite_int8", SHA_A, near)
        assertTrue(ok.passed) { ok.message }
        val far = python.copyOf().also { it[4] = 0.60f; it[5] = 0.35f }
        val bad = golden.check("tflite_int8", "0123456789ABCDEF".repeat(4), far)
        assertTrue(!bad.passed) { bad.message }
        assertTrue(bad.message.contains("at nv")) { bad.message }
    }
    t.test("device golden: top-1 must agree unless same_top1 is false") {
        val flipped = floatArrayOf(0.01f, 0.02f, 0.05f, 0.01f, 0.44f, 0.46f, 0.01f)
        val wide = DeviceGolden.parse(goldenJson(tolerances = """{"tflite_int8": {"max_abs_diff": 0.5}}"""))
        assertTrue(!wide.check("tflite_int8", SHA_A, flipped).passed) { "top-1 differs" }
        val lax = DeviceGolden.parse(goldenJson(tolerances = """{"tflite_int8": {"max_abs_diff": 0.5, "same_top1": false}}"""))
        assertTrue(lax.check("tflite_int8", SHA_A, flipped).passed) { "same_top1 false" }
    }
    t.test("device golden: another model, format or size is a failure that says why") {
        val other = golden.check("tflite_int8", SHA_B, python)
        assertTrue(!other.passed && other.message.contains("regenerate the golden")) { other.message }
        val noFormat = golden.check("tflite_dynamic", SHA_A, python)
        assertTrue(!noFormat.passed && noFormat.message.contains("no tolerance for tflite_dynamic")) { noFormat.message }
        assertTrue(!golden.check("tflite_int8", SHA_A, FloatArray(3)).passed) { "size" }
        val nan = python.copyOf().also { it[0] = Float.NaN }
        assertTrue(!golden.check("tflite_int8", SHA_A, nan).passed) { "NaN" }
    }
    t.test("device golden: malformed files are rejected") {
        val bad = listOf(
            "not JSON" to "{",
            "newer version" to goldenJson(version = 2),
            "image path" to goldenJson(image = "../x.png"),
            "probs length" to goldenJson(probs = "[0.5, 0.5]"),
            "tolerance above 1" to goldenJson(tolerances = """{"tflite_int8": {"max_abs_diff": 2}}"""),
            "same_top1 not boolean" to goldenJson(tolerances = """{"tflite_int8": {"max_abs_diff": 0.1, "same_top1": "yes"}}""")
        )
        for ((name, text) in bad) assertThrows<SpecException>(name) { DeviceGolden.parse(text) }
    }
    t.test("device golden: hex digest") {
        assertEquals("00ff10ab", DeviceGolden.hex(byteArrayOf(0, -1, 16, -85)), "hex")
    }
}

// ---------------------------------------------------------------------------------- screen state

private fun screenStateTests(t: TestRunner) {
    val cpu = InferenceSettings(Hardware.CPU, 4)
    val gpu = InferenceSettings(Hardware.GPU, 4)
    val start = ScreenState<String>(ModelState.Loading(cpu))
    t.test("screen: a load error stays visible after a photo is picked (issue 15)") {
        val failed = start.modelFailed("cannot read model_spec.json", fixableBySettings = false)
        assertEquals(StatusLine.Kind.MODEL_FAILED, failed.line().kind, "after the error")
        assertEquals(false, failed.photoButtonsEnabled, "photo buttons off")
        val picked = failed.readingPhoto().photoRead("photo")
        assertEquals(StatusLine.Kind.MODEL_FAILED, picked.line().kind, "after a photo")
        assertEquals("cannot read model_spec.json", picked.line().text, "the message")
        assertEquals(false, picked.classifyEnabled, "classify off")
        assertEquals(false, picked.photoButtonsEnabled, "photo buttons still off")
    }
    t.test("screen: a photo picked while loading waits, then is classified") {
        val waiting = start.readingPhoto().photoRead("photo")
        assertEquals(StatusLine.Kind.LOADING_MODEL, waiting.line().kind, "loading")
        assertEquals(true, waiting.waitingForModel, "waiting")
        assertEquals(false, waiting.classifyEnabled, "classify off while loading")
        val ready = waiting.modelReady(cpu, "model")
        assertEquals(true, ready.classifyEnabled, "classify on")
        assertEquals(StatusLine.Kind.READY, ready.line().kind, "ready")
        val done = ready.classifying().classified("1. melanoma")
        assertEquals(StatusLine.Kind.RESULT, done.line().kind, "result")
        assertEquals("1. melanoma", done.line().text, "text")
    }
    t.test("screen: a GPU failure is fixed by reloading with other settings") {
        val ready = start.modelReady(cpu, "m").readingPhoto().photoRead("p").classifying().classified("r")
        val gpuFailed = ready.modelLoading(gpu).modelFailed("GPU accelerator not available", fixableBySettings = true)
        assertEquals(false, gpuFailed.photoButtonsEnabled, "photo off")
        assertEquals(true, gpuFailed.settingsEnabled, "settings on, to fix it")
        assertEquals("p", gpuFailed.photo, "photo kept")
        val fixed = gpuFailed.modelLoading(cpu).modelReady(cpu, "m")
        assertEquals(true, fixed.photoButtonsEnabled, "photo on again")
        assertEquals(true, fixed.classifyEnabled, "classify on again")
    }
    t.test("screen: a bad photo or form keeps the old photo and says why") {
        val done = start.modelReady(cpu, "m").readingPhoto().photoRead("p").classifying().classified("r")
        val badPhoto = done.readingPhoto().photoFailed("not an image")
        assertEquals("p", badPhoto.photo, "old photo kept")
        assertEquals(StatusLine.Kind.NOTICE, badPhoto.line().kind, "notice")
        val badAge = done.classifyFailed("age 130 is outside 0..120", "age")
        assertEquals("age", badAge.noticeField, "field")
        assertEquals(null, badAge.classifying().noticeField, "cleared by the next run")
        assertEquals(null, badAge.result, "old result dropped")
        assertEquals("age 130 is outside 0..120", badAge.line().text, "message")
        assertEquals(true, badAge.classifyEnabled, "can classify again")
        assertEquals(StatusLine.Kind.NO_PHOTO, start.modelReady(cpu, "m").line().kind, "no photo")
    }
    t.test("screen: nothing starts while something runs") {
        val busy = start.modelReady(cpu, "m").readingPhoto()
        assertEquals(false, busy.photoButtonsEnabled, "photo off while reading")
        assertEquals(false, busy.settingsEnabled, "settings off while reading")
        assertEquals(false, start.settingsEnabled, "settings off while loading")
        val running = busy.photoRead("p").classifying()
        assertEquals(false, running.classifyEnabled, "classify off while running")
        assertEquals(StatusLine.Kind.RUNNING, running.line().kind, "running")
    }
}
