package org.mobileskin.demo

import android.content.res.AssetManager
import android.os.SystemClock
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.Model
import com.google.ai.edge.litert.TensorBuffer
import com.google.ai.edge.litert.TensorType
import org.mobileskin.core.Hardware
import org.mobileskin.core.InferenceSettings
import org.mobileskin.core.ModelSpec

/**
 * The bundled `.tflite` run with LiteRT 2.x's [CompiledModel] (artifact
 * `com.google.ai.edge.litert:litert:2.3.0`, GPU accelerator in `litert-gpu:2.3.0`), through the
 * named signature [SIGNATURE]: inputs `image` and `metadata`, output `probs`, by name, never by
 * position.
 *
 * [open] checks the model against `model_spec.json` (each input's element type and shape, the
 * output's shape), compiles it for the chosen hardware and thread count, allocates the named
 * buffers and runs once on zeros, so the first timed run is not a warm-up. Whatever it created is
 * closed if any of that throws. One instance is used by one thread at a time (the ViewModel's
 * model thread); [close] releases the buffers, the compiled model and the model, in that order.
 */
class SkinClassifier private constructor(
    val spec: ModelSpec,
    val settings: InferenceSettings,
    private val model: Model,
    private val compiled: CompiledModel,
    private val inputs: Map<String, TensorBuffer>,
    private val outputs: Map<String, TensorBuffer>
) : AutoCloseable {
    /** One answer: probabilities in spec class order and the wall time of the model call. */
    class Result(val probs: FloatArray, val inferenceMs: Double)

    private val imageValues = spec.imageSize * spec.imageSize * 3
    private var closed = false

    /**
     * Runs the model on one image (S*S*3 floats, RGB 0..255, from
     * [org.mobileskin.core.ImagePreprocessor]) and one metadata vector (from
     * [org.mobileskin.core.MetadataEncoder]; null only for a model without metadata).
     * [Result.inferenceMs] times `CompiledModel.run` alone, not the buffer writes and reads.
     */
    fun run(image: FloatArray, metadata: FloatArray?): Result {
        check(!closed) { "the classifier is closed" }
        require(image.size == imageValues) { "image has ${image.size} values, the model takes $imageValues" }
        inputs.getValue(ModelSpec.IMAGE_INPUT).writeFloat(image)
        val encoder = spec.encoder
        if (encoder != null) {
            requireNotNull(metadata) { "this model needs the metadata input" }
            require(metadata.size == encoder.size) { "metadata has ${metadata.size} values, the model takes ${encoder.size}" }
            inputs.getValue(ModelSpec.METADATA_INPUT).writeFloat(metadata)
        }
        val start = SystemClock.elapsedRealtimeNanos()
        compiled.run(inputs, outputs, SIGNATURE)
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        val probs = outputs.getValue(ModelSpec.OUTPUT).readFloat()
        check(probs.size == spec.classes.size) {
            "the model gave ${probs.size} probabilities for ${spec.classes.size} classes"
        }
        return Result(probs, ms)
    }

    override fun close() {
        if (closed) return
        closed = true
        val resources = ArrayList<AutoCloseable>()
        resources.addAll(inputs.values)
        resources.addAll(outputs.values)
        resources.add(compiled) // before the model it was compiled from
        resources.add(model)
        closeAll(resources)
    }

    companion object {
        const val MODEL_ASSET = "model.tflite"

        /** The exporter's signature (python export/to_tflite.py writes exactly this one). */
        const val SIGNATURE = "serving_default"

        /** Loads, checks, compiles and warms up the bundled model; see the class comment. */
        fun open(assets: AssetManager, spec: ModelSpec, settings: InferenceSettings): SkinClassifier {
            val created = ArrayList<AutoCloseable>()
            try {
                val model = Model.load(assets, MODEL_ASSET).also { created.add(it) }
                checkModel(model, spec)
                val options = when (settings.hardware) {
                    // The GPU alone: if it cannot run the model, creation fails and the app says
                    // so, instead of quietly running on the CPU (Options(GPU, CPU) would).
                    Hardware.GPU -> CompiledModel.Options(Accelerator.GPU)
                    Hardware.CPU -> CompiledModel.Options(Accelerator.CPU).apply {
                        cpuOptions = CompiledModel.CpuOptions(numThreads = settings.threads)
                    }
                }
                val compiled = CompiledModel.create(model, options, null).also { created.add(it) }
                val inputs = LinkedHashMap<String, TensorBuffer>()
                for (name in spec.inputNames) {
                    inputs[name] = compiled.createInputBuffer(name, SIGNATURE).also { created.add(it) }
                }
                val outputs = mapOf(
                    ModelSpec.OUTPUT to compiled.createOutputBuffer(ModelSpec.OUTPUT, SIGNATURE).also { created.add(it) }
                )
                val classifier = SkinClassifier(spec, settings, model, compiled, inputs, outputs)
                val s = spec.imageSize
                classifier.run(FloatArray(s * s * 3), spec.encoder?.let { FloatArray(it.size) }) // warm-up
                return classifier
            } catch (err: Throwable) {
                try {
                    closeAll(created.asReversed()) // buffers, then the compiled model, then the model
                } catch (closeErr: Throwable) {
                    err.addSuppressed(closeErr)
                }
                throw err
            }
        }

        /** The signature's tensors, as model_spec.json describes them (float32, fixed shapes). */
        private fun checkModel(model: Model, spec: ModelSpec) {
            val s = spec.imageSize
            checkTensor(ModelSpec.IMAGE_INPUT, input(model, ModelSpec.IMAGE_INPUT), listOf(1, s, s, 3))
            spec.encoder?.let {
                checkTensor(ModelSpec.METADATA_INPUT, input(model, ModelSpec.METADATA_INPUT), listOf(1, it.size))
            }
            val probs = try {
                model.getOutputTensorType(ModelSpec.OUTPUT, SIGNATURE)
            } catch (err: Exception) {
                throw IllegalStateException(
                    "the model's signature '$SIGNATURE' has no output '${ModelSpec.OUTPUT}' (${err.message})", err
                )
            }
            checkTensor(ModelSpec.OUTPUT, probs, listOf(1, spec.classes.size))
        }

        private fun input(model: Model, name: String): TensorType = try {
            model.getInputTensorType(name, SIGNATURE)
        } catch (err: Exception) {
            throw IllegalStateException(
                "the model's signature '$SIGNATURE' has no input '$name' (${err.message}); export and " +
                    "model_spec.json disagree, or the model was not written by python export/to_tflite.py",
                err
            )
        }

        private fun checkTensor(name: String, type: TensorType, shape: List<Int>) {
            check(type.elementType == TensorType.ElementType.FLOAT) {
                "tensor '$name' is ${type.elementType}; this app feeds and reads float32 " +
                    "(the exporter keeps float inputs and outputs around the int8 graph)"
            }
            val dims = type.layout?.dimensions?.toList()
            check(dims == shape) { "tensor '$name' has shape $dims, expected $shape from model_spec.json" }
        }

        /** Closes every one of [resources] in order; rethrows the first error, the others suppressed. */
        private fun closeAll(resources: List<AutoCloseable>) {
            var first: Throwable? = null
            for (r in resources) {
                try {
                    r.close()
                } catch (err: Throwable) {
                    if (first == null) first = err else first.addSuppressed(err)
                }
            }
            first?.let { throw it }
        }
    }
}
