package org.mobileskin.core

import java.util.Locale

/**
 * The golden for the instrumented test (`app/src/androidTest`): Python's answer for one committed
 * input, per export format, and how far the phone may be from it.
 *
 * File `device_golden.json` (format_version 1), written by a Python-side generator:
 *
 * ```
 * {
 *   "format_version": 1,
 *   "generator": "what wrote this file (free text)",
 *   "input": {
 *     "image": "input.png",                 // beside this file; PNG so decoding is exact
 *     "image_sha256": "<hex>",              // optional: of that file
 *     "age": 45.0,                          // years, or null for unknown
 *     "sex": "male",                        // as the app's form gives it
 *     "localization": "back"
 *   },
 *   "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
 *   "tolerances": {                         // per format
 *     "tflite_fp32": {"max_abs_diff": 1e-4, "same_top1": true},
 *     "tflite_int8": {"max_abs_diff": 0.02, "same_top1": true}
 *   },
 *   "expected": {                           // per format: Python's probs for that export
 *     "tflite_int8": {"model_sha256": "<hex of model.tflite>", "probs": [7 numbers]}
 *   }
 * }
 * ```
 *
 * `probs` is what Python's pipeline (`resize_image`, `MetadataEncoding.encode`, the LiteRT
 * interpreter on the same `.tflite`) gives for the input; the phone passes when every class is
 * within `max_abs_diff` of it and, if `same_top1` (default true), the top class is the same.
 * `model_sha256` ties the answer to one model file: a golden made from another run's export
 * fails with a message saying so rather than comparing unrelated numbers.
 */
class DeviceGolden(
    val imageFile: String,
    val imageSha256: String?,
    val age: Double?,
    val sex: String?,
    val localization: String?,
    val classes: List<String>,
    val tolerances: Map<String, Tolerance>,
    val expected: Map<String, Expected>
) {
    class Tolerance(val maxAbsDiff: Double, val sameTop1: Boolean)

    class Expected(val modelSha256: String, val probs: FloatArray)

    /** The outcome of one comparison: [passed], and a message that says why either way. */
    class Verdict(val passed: Boolean, val message: String)

    /**
     * Compares the phone's [probs] for the bundled model ([format], file hash [modelSha256]) with
     * the golden.
     */
    fun check(format: String, modelSha256: String, probs: FloatArray): Verdict {
        val tol = tolerances[format]
            ?: return Verdict(false, "the golden has no tolerance for $format (it has ${tolerances.keys})")
        val want = expected[format]
            ?: return Verdict(false, "the golden has no expected answer for $format (it has ${expected.keys})")
        if (!sameHex(want.modelSha256, modelSha256)) {
            return Verdict(
                false,
                "the golden's $format answer was made for model sha256 ${want.modelSha256}, but the app " +
                    "bundles $modelSha256: build the app from the run the golden was made from, or " +
                    "regenerate the golden from this run"
            )
        }
        if (probs.size != want.probs.size) {
            return Verdict(false, "the phone gave ${probs.size} probabilities, the golden has ${want.probs.size}")
        }
        var worst = -1
        var worstDiff = -1.0
        for (i in probs.indices) {
            if (probs[i].isNaN()) return Verdict(false, "the phone gave NaN for ${className(i)}")
            val d = Math.abs(probs[i].toDouble() - want.probs[i].toDouble())
            if (d > worstDiff) {
                worstDiff = d
                worst = i
            }
        }
        val phoneTop = TopK.indices(probs, 1)[0]
        val pythonTop = TopK.indices(want.probs, 1)[0]
        val summary = String.format(
            Locale.ROOT,
            "%s: max |phone - python| = %.6f at %s (tolerance %.6f); top-1 phone %s, python %s",
            format, worstDiff, className(worst), tol.maxAbsDiff, className(phoneTop), className(pythonTop)
        )
        val passed = worstDiff <= tol.maxAbsDiff && (!tol.sameTop1 || phoneTop == pythonTop)
        return Verdict(passed, summary)
    }

    private fun className(i: Int): String = if (i in classes.indices) classes[i] else "#$i"

    companion object {
        const val FILE = "device_golden.json"
        const val SUPPORTED_FORMAT_VERSION = 1

        /** Parses `device_golden.json`; throws [SpecException] naming the bad field. */
        fun parse(text: String): DeviceGolden {
            val root = try {
                JsonPath.obj(Json.parse(text), FILE)
            } catch (err: JsonException) {
                throw SpecException("$FILE is not valid JSON (${err.message})")
            }
            val version = JsonPath.int(JsonPath.field(root, "format_version", FILE), "format_version")
            if (version > SUPPORTED_FORMAT_VERSION) {
                throw SpecException("$FILE: format_version $version is newer than this test understands ($SUPPORTED_FORMAT_VERSION)")
            }
            val input = JsonPath.obj(JsonPath.field(root, "input", FILE), "input")
            val image = JsonPath.string(JsonPath.field(input, "image", "input"), "input.image")
            if (image.isEmpty() || image.contains("/") || image.contains("\\")) {
                throw SpecException("input.image: expected a file name beside $FILE, got '$image'")
            }
            val age = input["age"]?.let { JsonPath.number(it, "input.age") }
            val classes = JsonPath.strings(JsonPath.field(root, "classes", FILE), "classes")
            if (classes.isEmpty()) throw SpecException("classes: expected a non-empty list")

            val tolerances = LinkedHashMap<String, Tolerance>()
            for ((format, value) in JsonPath.obj(JsonPath.field(root, "tolerances", FILE), "tolerances")) {
                val t = JsonPath.obj(value, "tolerances.$format")
                val maxAbs = JsonPath.number(JsonPath.field(t, "max_abs_diff", "tolerances.$format"), "tolerances.$format.max_abs_diff")
                if (!(maxAbs >= 0.0 && maxAbs <= 1.0)) {
                    throw SpecException("tolerances.$format.max_abs_diff: expected 0..1, got $maxAbs")
                }
                val same = t["same_top1"]?.let {
                    it as? Boolean ?: throw SpecException("tolerances.$format.same_top1: expected true or false")
                } ?: true
                tolerances[format] = Tolerance(maxAbs, same)
            }
            val expected = LinkedHashMap<String, Expected>()
            for ((format, value) in JsonPath.obj(JsonPath.field(root, "expected", FILE), "expected")) {
                val e = JsonPath.obj(value, "expected.$format")
                val sha = JsonPath.string(JsonPath.field(e, "model_sha256", "expected.$format"), "expected.$format.model_sha256")
                if (!isHex(sha, 64)) throw SpecException("expected.$format.model_sha256: expected 64 hex digits")
                val probs = JsonPath.list(JsonPath.field(e, "probs", "expected.$format"), "expected.$format.probs")
                    .mapIndexed { i, p -> JsonPath.number(p, "expected.$format.probs[$i]").toFloat() }
                if (probs.size != classes.size) {
                    throw SpecException("expected.$format.probs: ${probs.size} values for ${classes.size} classes")
                }
                expected[format] = Expected(sha, probs.toFloatArray())
            }
            val imageSha = input["image_sha256"]?.let { JsonPath.string(it, "input.image_sha256") }
            if (imageSha != null && !isHex(imageSha, 64)) throw SpecException("input.image_sha256: expected 64 hex digits")
            return DeviceGolden(
                image, imageSha, age,
                input["sex"]?.let { JsonPath.string(it, "input.sex") },
                input["localization"]?.let { JsonPath.string(it, "input.localization") },
                classes, tolerances, expected
            )
        }

        /** Lower-case hex of [bytes] (for SHA-256 digests). */
        fun hex(bytes: ByteArray): String {
            val digits = "0123456789abcdef"
            val out = StringBuilder(bytes.size * 2)
            for (b in bytes) {
                val v = b.toInt() and 0xff
                out.append(digits[v shr 4]).append(digits[v and 0x0f])
            }
            return out.toString()
        }

        private fun isHex(s: String, length: Int): Boolean =
            s.length == length && s.all { it in '0'..'9' || it in 'a'..'f' || it in 'A'..'F' }

        private fun sameHex(a: String, b: String): Boolean = a.equals(b, ignoreCase = true)
    }
}
