package org.mobileskin.demo

import android.content.res.AssetManager
import android.os.SystemClock
import org.mobileskin.core.ModelSpec
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The exported `.tflite` run with LiteRT's [Interpreter] through its named signature: inputs
 * `image` and `metadata`, output `probs`, never by position.
 *
 * On creation it checks the model against `model_spec.json` (input names, dtypes, shapes, number
 * of classes) and runs once on zeros, so the first timed run is not a warm-up.
 */
class SkinClassifier(assets: AssetManager, val spec: ModelSpec) : AutoCloseable {
    /** One answer: probabilities in spec class order and the wall time of the model call. */
    class Result(val probs: FloatArray, val inferenceMs: Double)

    private val interpreter = Interpreter(loadModel(assets), Interpreter.Options().setNumThreads(THREADS))
    private val signature: String = chooseSignature(interpreter.signatureKeys)
    private val imageBuffer = floatBuffer(spec.imageSize * spec.imageSize * 3)
    private val metadataBuffer = spec.encoder?.let { floatBuffer(it.size) }

    init {
        val inputs = interpreter.getSignatureInputs(signature).toSet()
        val outputs = interpreter.getSignatureOutputs(signature).toSet()
        check(inputs == spec.inputNames.toSet()) {
            "the model's inputs $inputs are not the spec's ${spec.inputNames}: export and spec disagree"
        }
        check(ModelSpec.OUTPUT in outputs) { "the model has no '${ModelSpec.OUTPUT}' output: $outputs" }
        val s = spec.imageSize
        checkTensor(interpreter.getInputTensorFromSignature(ModelSpec.IMAGE_INPUT, signature), intArrayOf(1, s, s, 3))
        spec.encoder?.let {
            checkTensor(interpreter.getInputTensorFromSignature(ModelSpec.METADATA_INPUT, signature), intArrayOf(1, it.size))
        }
        checkTensor(interpreter.getOutputTensorFromSignature(ModelSpec.OUTPUT, signature), intArrayOf(1, spec.classes.size))
        run(FloatArray(s * s * 3), spec.encoder?.let { FloatArray(it.size) }) // warm-up
    }

    /**
     * Runs the model on one image (S*S*3 floats, RGB 0..255, from
     * [org.mobileskin.core.ImagePreprocessor]) and one metadata vector (from
     * [org.mobileskin.core.MetadataEncoder]; null only for a model without metadata).
     */
    @Synchronized
    fun run(image: FloatArray, metadata: FloatArray?): Result {
        require(image.size == imageBuffer.capacity() / 4) { "image has ${image.size} values" }
        val inputs = HashMap<String, Any>()
        imageBuffer.rewind()
        imageBuffer.asFloatBuffer().put(image)
        inputs[ModelSpec.IMAGE_INPUT] = imageBuffer
        if (metadataBuffer != null) {
            requireNotNull(metadata) { "this model needs the metadata input" }
            require(metadata.size == metadataBuffer.capacity() / 4) { "metadata has ${metadata.size} values" }
            metadataBuffer.rewind()
            metadataBuffer.asFloatBuffer().put(metadata)
            inputs[ModelSpec.METADATA_INPUT] = metadataBuffer
        }
        val probs = Array(1) { FloatArray(spec.classes.size) }
        val outputs = HashMap<String, Any>()
        outputs[ModelSpec.OUTPUT] = probs
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.runSignature(inputs, outputs, signature)
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        return Result(probs[0], ms)
    }

    override fun close() = interpreter.close()

    private fun checkTensor(tensor: org.tensorflow.lite.Tensor, shape: IntArray) {
        check(tensor.dataType() == DataType.FLOAT32) {
            "tensor '${tensor.name()}' is ${tensor.dataType()}; this app feeds and reads float32 " +
                "(the exporter keeps float inputs and outputs around the int8 graph)"
        }
        check(tensor.shape().contentEquals(shape)) {
            "tensor '${tensor.name()}' has shape ${tensor.shape().contentToString()}, " +
                "expected ${shape.contentToString()} from model_spec.json"
        }
    }

    companion object {
        const val MODEL_ASSET = "model.tflite"
        private const val THREADS = 4
        private const val DEFAULT_SIGNATURE = "serving_default"

        private fun loadModel(assets: AssetManager): MappedByteBuffer =
            assets.openFd(MODEL_ASSET).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }

        private fun chooseSignature(keys: Array<String>): String = when {
            keys.size == 1 -> keys[0]
            DEFAULT_SIGNATURE in keys -> DEFAULT_SIGNATURE
            keys.isEmpty() -> error("the model has no signature; export it with python export/to_tflite.py")
            else -> error("the model has several signatures (${keys.joinToString()}) and none is '$DEFAULT_SIGNATURE'")
        }

        private fun floatBuffer(count: Int): ByteBuffer =
            ByteBuffer.allocateDirect(4 * count).order(ByteOrder.nativeOrder())
    }
}
