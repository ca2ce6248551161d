package org.mobileskin.core

/**
 * `model_spec.json`: the contract of one exported model, as written by Python's
 * `mobile_skin.contract.spec.ModelSpec.save`.
 *
 * The app reads the class order, the full class names, the image size, the tensor names and the
 * metadata encoding from here; nothing about the model is hard-coded in the app.
 *
 * @property classes output order of the `probs` tensor.
 * @property classNames full names for people, by class code.
 * @property imageSize S: the `image` input is float32 (1, S, S, 3), raw RGB in 0..255.
 * @property encoder the metadata encoding, or null for a model without the `metadata` input.
 * @property modelFile file name of the model the spec describes (may be empty).
 * @property calibrationTemperature the temperature Python folded into the model's softmax layer
 *   (`calibration.temperature`), or null for raw softmax. The model's `probs` are already
 *   calibrated: the app only reports it, it never rescales.
 */
class ModelSpec(
    val classes: List<String>,
    val classNames: Map<String, String>,
    val imageSize: Int,
    val encoder: MetadataEncoder?,
    val modelFile: String = "",
    val calibrationTemperature: Double? = null
) {
    /** Names of the model's inputs (signature input names), image first. */
    val inputNames: List<String>
        get() = if (encoder != null) listOf(IMAGE_INPUT, METADATA_INPUT) else listOf(IMAGE_INPUT)

    /** "melanoma (mel)": the full name followed by the code. */
    fun displayName(classIndex: Int): String {
        val code = classes[classIndex]
        val name = classNames[code]
        return if (name == null || name == code) code else "$name ($code)"
    }

    /** "calibrated (temperature 1.42)" or "raw softmax", for the model line. */
    val calibrationLabel: String
        get() = calibrationTemperature?.let { "calibrated (temperature ${"%.2f".format(java.util.Locale.ROOT, it)})" }
            ?: "raw softmax"

    companion object {
        const val IMAGE_INPUT = "image"
        const val METADATA_INPUT = "metadata"
        const val OUTPUT = "probs"
        const val SPEC_FILE = "model_spec.json"
        const val SUPPORTED_FORMAT_VERSION = 1

        /** Parses and checks a `model_spec.json` document; throws [SpecException] when invalid. */
        fun parse(jsonText: String): ModelSpec {
            val root = try {
                JsonPath.obj(Json.parse(jsonText), "model_spec")
            } catch (err: JsonException) {
                throw SpecException("model_spec.json is not valid JSON (${err.message})")
            }
            val version = JsonPath.int(JsonPath.field(root, "format_version", "model_spec"), "format_version")
            if (version > SUPPORTED_FORMAT_VERSION) {
                throw SpecException(
                    "format_version $version is newer than this app understands ($SUPPORTED_FORMAT_VERSION)"
                )
            }
            val classes = JsonPath.strings(JsonPath.field(root, "classes", "model_spec"), "classes")
            if (classes.isEmpty() || classes.toSet().size != classes.size) {
                throw SpecException("classes: expected a non-empty list of distinct names, got $classes")
            }
            val classNames = LinkedHashMap<String, String>()
            val namesJson = root["class_names"]
            if (namesJson != null) {
                for ((code, name) in JsonPath.obj(namesJson, "class_names")) {
                    classNames[code] = JsonPath.string(name, "class_names.$code")
                }
            }
            val size = JsonPath.int(JsonPath.field(root, "image_size", "model_spec"), "image_size")
            if (size <= 0) throw SpecException("image_size: expected a positive size, got $size")

            val inputs = JsonPath.obj(JsonPath.field(root, "inputs", "model_spec"), "inputs")
            checkImageInput(JsonPath.obj(JsonPath.field(inputs, IMAGE_INPUT, "inputs"), "inputs.image"), size)
            val encoder = inputs[METADATA_INPUT]?.let { meta ->
                val metaObj = JsonPath.obj(meta, "inputs.metadata")
                checkDtype(metaObj, "inputs.metadata")
                val enc = MetadataEncoder.fromJson(
                    JsonPath.obj(JsonPath.field(metaObj, "encoding", "inputs.metadata"), "inputs.metadata.encoding")
                )
                checkShape(metaObj, "inputs.metadata", listOf(-1, enc.size))
                enc
            }
            val outputs = JsonPath.obj(JsonPath.field(root, "outputs", "model_spec"), "outputs")
            val probs = JsonPath.obj(JsonPath.field(outputs, OUTPUT, "outputs"), "outputs.probs")
            checkShape(probs, "outputs.probs", listOf(-1, classes.size))
            val modelFile = root["model_file"] as? String ?: ""
            return ModelSpec(classes, classNames, size, encoder, modelFile, parseTemperature(root))
        }

        /** `calibration.temperature` when present: a positive number; absent or `{}` is raw softmax. */
        private fun parseTemperature(root: Map<String, Any?>): Double? {
            val calibration = root["calibration"] ?: return null
            val t = JsonPath.obj(calibration, "calibration")["temperature"] ?: return null
            val value = JsonPath.number(t, "calibration.temperature")
            if (!(value > 0.0) || value.isInfinite()) {
                throw SpecException("calibration.temperature: expected a positive number, got $value")
            }
            return value
        }

        private fun checkImageInput(image: Map<String, Any?>, size: Int) {
            checkDtype(image, "inputs.image")
            checkShape(image, "inputs.image", listOf(-1, size, size, 3))
            for ((key, want) in listOf("layout" to "NHWC", "color" to "RGB")) {
                val got = image[key] ?: continue
                if (got != want) throw SpecException("inputs.image.$key: expected $want, got $got")
            }
            val range = image["range"]
            if (range != null) {
                val r = JsonPath.list(range, "inputs.image.range")
                if (r != listOf(0.0, 255.0)) {
                    throw SpecException("inputs.image.range: expected [0, 255] (raw pixels), got $r")
                }
            }
        }

        private fun checkDtype(input: Map<String, Any?>, path: String) {
            val dtype = JsonPath.string(JsonPath.field(input, "dtype", path), "$path.dtype")
            if (dtype != "float32") throw SpecException("$path.dtype: expected float32, got $dtype")
        }

        private fun checkShape(tensor: Map<String, Any?>, path: String, want: List<Int>) {
            val shapeJson = tensor["shape"] ?: return
            val shape = JsonPath.list(shapeJson, "$path.shape").mapIndexed { i, v -> JsonPath.int(v, "$path.shape[$i]") }
            if (shape != want) throw SpecException("$path.shape: expected $want, got $shape")
        }
    }
}

/** An invalid or unsupported `model_spec.json`. */
class SpecException(message: String) : IllegalArgumentException(message)
