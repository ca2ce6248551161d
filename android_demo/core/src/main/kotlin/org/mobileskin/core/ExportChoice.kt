package org.mobileskin.core

import java.util.Locale

/**
 * Which exported `.tflite` the app bundles, chosen from a training run's parity table.
 *
 * The exporter (`python export/to_tflite.py`) writes each format to `<run>/export/<format>/`
 * (`model.tflite` and `model_spec.json`) and records its parity verdict in
 * `<run>/export/parity.json`: `{"rows": [{"format", "status", "file", "size_mb", "latency_ms",
 * ...}, ...]}`, status `PASS`, `FAIL`, `UNVERIFIED` (gate skipped) or `REFERENCE` (the Keras row).
 * A format that failed keeps its model as `model.FAILED.tflite`.
 *
 * The Gradle task `copyModel` (buildSrc) calls [ExportChooser]; this file is pure Kotlin so the
 * choice is tested by `core/run_tests.sh` like the rest of the core.
 */
class ParityRow(
    val format: String,
    val status: String,
    val file: String,
    val sizeMb: Double?,
    val latencyMs: Double?,
    val reason: String
) {
    companion object {
        /**
         * The rows of a `parity.json` document. Throws [ExportChoiceException] naming [path] when
         * the text is not JSON or a row lacks `format` or `file`.
         */
        fun parseTable(text: String, path: String): List<ParityRow> {
            val root = try {
                JsonPath.obj(Json.parse(text), "parity.json")
            } catch (err: IllegalArgumentException) { // JsonException or SpecException
                throw ExportChoiceException("$path is not a parity table: ${err.message}")
            }
            return try {
                JsonPath.list(JsonPath.field(root, "rows", "parity.json"), "rows").mapIndexed { i, value ->
                    val row = JsonPath.obj(value, "rows[$i]")
                    ParityRow(
                        format = JsonPath.string(JsonPath.field(row, "format", "rows[$i]"), "rows[$i].format"),
                        status = row["status"]?.let { JsonPath.string(it, "rows[$i].status") } ?: ExportChooser.UNVERIFIED,
                        file = JsonPath.string(JsonPath.field(row, "file", "rows[$i]"), "rows[$i].file"),
                        sizeMb = row["size_mb"]?.let { JsonPath.number(it, "rows[$i].size_mb") },
                        latencyMs = row["latency_ms"]?.let { JsonPath.number(it, "rows[$i].latency_ms") },
                        reason = row["reason"] as? String ?: ""
                    )
                }
            } catch (err: SpecException) {
                throw ExportChoiceException("$path: ${err.message}")
            }
        }
    }
}

/**
 * The export to bundle: the [format] directory's [file], with the parity [status] it has (null
 * when parity.json has no row for it) and a one-line [reason] for the build log.
 */
class ExportChoice(val format: String, val file: String, val status: String?, val reason: String)

/** No export may be bundled; the message says why and what to do. */
class ExportChoiceException(message: String) : IllegalArgumentException(message)

object ExportChooser {
    const val PASS = "PASS"
    const val FAIL = "FAIL"
    const val UNVERIFIED = "UNVERIFIED"
    const val SPEC_FILE = "model_spec.json"

    /**
     * The TFLite formats the exporter writes, in the default order of preference: smallest and
     * fastest first (full int8, which the exporter makes with quantization-aware training,
     * dynamic-range, float16, float32). Only a format whose parity status is PASS is taken.
     */
    val TFLITE_FORMATS: List<String> =
        listOf("tflite_int8", "tflite_dynamic", "tflite_fp16", "tflite_fp32")

    /**
     * A preference order from the `mobileSkinFormats` Gradle property: format names separated by
     * commas or spaces; null or blank gives [TFLITE_FORMATS]. Throws [ExportChoiceException] on an
     * unknown or repeated name.
     */
    fun parsePreference(text: String?): List<String> {
        if (text == null || text.isBlank()) return TFLITE_FORMATS
        val names = text.split(',', ' ', '\t', '\n').map { it.trim() }.filter { it.isNotEmpty() }
        val seen = LinkedHashSet<String>()
        for (name in names) {
            if (name !in TFLITE_FORMATS) {
                throw ExportChoiceException(
                    "mobileSkinFormats: unknown format '$name'; the TFLite formats are ${TFLITE_FORMATS.joinToString(", ")}"
                )
            }
            if (!seen.add(name)) throw ExportChoiceException("mobileSkinFormats: '$name' is listed twice")
        }
        return seen.toList()
    }

    /**
     * The first format of [preference] whose row in [rows] has status PASS and whose files exist
     * ([present] gets the format and the row's file name, and says whether both that file and
     * `model_spec.json` are in `<run>/export/<format>/`).
     *
     * Throws [ExportChoiceException] naming [parityPath] when none qualifies.
     */
    fun choose(
        rows: List<ParityRow>,
        preference: List<String>,
        parityPath: String,
        present: (String, String) -> Boolean
    ): ExportChoice {
        require(preference.isNotEmpty()) { "empty preference" }
        val byFormat = LinkedHashMap<String, ParityRow>()
        for (row in rows) byFormat[row.format] = row
        val skipped = ArrayList<String>()
        for (format in preference) {
            val row = byFormat[format]
            val why: String? = when {
                row == null -> "no parity row"
                row.status != PASS -> row.status
                !row.file.endsWith(".tflite") || row.file.contains(".FAILED.") -> "file ${row.file} is not a usable .tflite"
                !present(format, row.file) -> "PASS, but $format/${row.file} or $format/$SPEC_FILE is missing"
                else -> null
            }
            if (why != null) {
                skipped.add("$format: $why")
                continue
            }
            val took = row!!
            val facts = ArrayList<String>()
            facts.add(PASS)
            took.sizeMb?.let { facts.add(String.format(Locale.ROOT, "%.2f MB", it)) }
            took.latencyMs?.let { facts.add(String.format(Locale.ROOT, "%.1f ms on the export machine", it)) }
            val reason = "took $format (${facts.joinToString(", ")}): the first format with parity status PASS " +
                "in the order ${preference.joinToString(" > ")}" +
                if (skipped.isEmpty()) "" else " (skipped ${skipped.joinToString("; ")})"
            return ExportChoice(format, took.file, took.status, reason)
        }
        val others = rows.filter { it.format !in preference && it.status != "REFERENCE" }
            .map { "${it.format}: ${it.status}" }
        throw ExportChoiceException(
            "no export the app can bundle: none of ${preference.joinToString(", ")} passed the parity gate " +
                "(${skipped.joinToString("; ")})" +
                (if (others.isEmpty()) "" else "; not in the preference: ${others.joinToString("; ")}") +
                ". See the parity table $parityPath (parity.md beside it). Export a format that passes " +
                "(python export/to_tflite.py ...), widen the order with -PmobileSkinFormats=..., " +
                "or name one export directory with -PmobileSkinExport=<run>/export/<format>."
        )
    }

    /**
     * An export directory named explicitly (`mobileSkinExport`): its `model.tflite` is taken unless
     * [rows] (the run's parity table, null when there is none) marks [format] FAIL, which means the
     * file is stale or was put there by hand, since the exporter renames a failed model.
     */
    fun explicit(format: String, rows: List<ParityRow>?, parityPath: String): ExportChoice {
        val row = rows?.firstOrNull { it.format == format }
        val status = row?.status
        if (row != null && row.status == FAIL) {
            throw ExportChoiceException(
                "$format failed the parity gate ($parityPath: ${row.reason.ifEmpty { FAIL }}); " +
                    "the exporter renames a failed model to model.FAILED.tflite, so this model.tflite " +
                    "is stale. Choose an export that passed, or drop -PmobileSkinExport to let the " +
                    "build pick one from parity.json."
            )
        }
        val verdict = when {
            rows == null -> "no parity table found at $parityPath"
            status == null -> "no parity row for $format"
            status == PASS -> "parity status PASS"
            else -> "parity status $status, not checked by the gate"
        }
        return ExportChoice(format, "model.tflite", status, "took $format as named by -PmobileSkinExport ($verdict)")
    }
}

/**
 * `model_source.json`, written by `copyModel` beside the model in the app's assets: which export
 * the APK carries. The app shows it; the instrumented test picks its tolerance by [format].
 */
class ModelSource(val format: String, val status: String?, val modelSha256: String, val reason: String) {
    fun toJson(): String = "{\n" +
        "  \"format\": ${quote(format)},\n" +
        "  \"status\": ${if (status == null) "null" else quote(status)},\n" +
        "  \"model_sha256\": ${quote(modelSha256)},\n" +
        "  \"reason\": ${quote(reason)}\n" +
        "}\n"

    companion object {
        const val FILE = "model_source.json"

        fun parse(text: String): ModelSource {
            val root = JsonPath.obj(Json.parse(text), FILE)
            return ModelSource(
                format = JsonPath.string(JsonPath.field(root, "format", FILE), "format"),
                status = root["status"]?.let { JsonPath.string(it, "status") },
                modelSha256 = JsonPath.string(JsonPath.field(root, "model_sha256", FILE), "model_sha256"),
                reason = root["reason"] as? String ?: ""
            )
        }

        /** A JSON string literal (quotes, backslashes and control characters escaped). */
        fun quote(s: String): String {
            val out = StringBuilder("\"")
            for (c in s) {
                when {
                    c == '"' -> out.append("\\\"")
                    c == '\\' -> out.append("\\\\")
                    c == '\n' -> out.append("\\n")
                    c == '\r' -> out.append("\\r")
                    c == '\t' -> out.append("\\t")
                    c < ' ' -> out.append(String.format(Locale.ROOT, "\\u%04x", c - '\u0000'))
                    else -> out.append(c)
                }
            }
            return out.append('"').toString()
        }
    }
}
