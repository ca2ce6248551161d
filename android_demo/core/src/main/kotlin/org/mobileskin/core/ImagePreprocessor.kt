package org.mobileskin.core

/**
 * ARGB pixels (as `Bitmap.getPixels` returns them) -> the model's `image` input: float RGB in
 * 0..255, S x S x 3 in HWC order.
 *
 * This mirrors Python's `mobile_skin.contract.pipeline.resize_image`, which is
 * `tf.image.resize(img, (S, S), method="bilinear", antialias=True)`, then `tf.round` (half to
 * even) and a clip to 0..255. With `antialias=True` TensorFlow runs its ScaleAndTranslate kernel
 * with a triangle filter: separable, half-pixel centres, the filter widened by the downscale
 * factor when shrinking (so every input pixel contributes, like an area average) and weights
 * normalised over the taps that fall inside the image. When enlarging, the filter is not widened,
 * which is exactly half-pixel-centre bilinear interpolation with clamped edges. The arithmetic
 * below follows TensorFlow's order of float32 operations (rows first, then columns), so results
 * are bit-identical in practice; the tests allow one level of difference after rounding.
 *
 * Alpha is ignored (Python decodes images to RGB and drops alpha the same way). The image is
 * stretched to a square, without cropping, exactly as the training pipeline does.
 *
 * @property size S, the output width and height (the spec's `image_size`).
 */
class ImagePreprocessor(val size: Int) {
    init {
        require(size > 0) { "size must be positive, got $size" }
    }

    /** The model input: resized, rounded half-to-even, clipped to 0..255; length S * S * 3. */
    fun toModelInput(argb: IntArray, width: Int, height: Int): FloatArray {
        val out = resize(argb, width, height)
        for (i in out.indices) {
            out[i] = Math.min(255.0, Math.max(0.0, Math.rint(out[i].toDouble()))).toFloat()
        }
        return out
    }

    /** The resized image before rounding (what `tf.image.resize` returns); length S * S * 3. */
    fun resize(argb: IntArray, width: Int, height: Int): FloatArray {
        require(width > 0 && height > 0) { "image is empty: ${width}x$height" }
        require(argb.size >= width * height) { "need ${width * height} pixels, got ${argb.size}" }
        val rows = Spans.compute(size, height)
        val cols = Spans.compute(size, width)

        // Pass 1, rows: (height x width) -> (size x width), channels R, G, B; float accumulation.
        val rowStride = width * 3
        val intermediate = FloatArray(size * rowStride)
        for (y in 0 until size) {
            val outBase = y * rowStride
            val start = rows.starts[y]
            val taps = Math.min(start + rows.spanSize, height) - start
            for (t in 0 until taps) {
                val w = rows.weights[y * rows.spanSize + t]
                val inBase = (start + t) * width
                for (x in 0 until width) {
                    val p = argb[inBase + x]
                    val o = outBase + x * 3
                    intermediate[o] += ((p shr 16) and 0xFF).toFloat() * w
                    intermediate[o + 1] += ((p shr 8) and 0xFF).toFloat() * w
                    intermediate[o + 2] += (p and 0xFF).toFloat() * w
                }
            }
        }

        // Pass 2, columns: (size x width) -> (size x size).
        val out = FloatArray(size * size * 3)
        for (y in 0 until size) {
            val inRow = y * rowStride
            for (x in 0 until size) {
                val start = cols.starts[x]
                val taps = Math.min(start + cols.spanSize, width) - start
                var r = 0.0f
                var g = 0.0f
                var b = 0.0f
                for (t in 0 until taps) {
                    val w = cols.weights[x * cols.spanSize + t]
                    val i = inRow + (start + t) * 3
                    r += w * intermediate[i]
                    g += w * intermediate[i + 1]
                    b += w * intermediate[i + 2]
                }
                val o = (y * size + x) * 3
                out[o] = r
                out[o + 1] = g
                out[o + 2] = b
            }
        }
        return out
    }

    /**
     * Filter taps for one axis, as TensorFlow's `ComputeSpansCore` (scale_and_translate_op.cc)
     * builds them for the triangle kernel with antialiasing: output pixel `x` reads
     * `spanSize` input pixels from `starts[x]`, with `weights[x * spanSize + k]` (zero-padded).
     */
    internal class Spans(val spanSize: Int, val starts: IntArray, val weights: FloatArray) {
        companion object {
            private const val RADIUS = 1.0f // triangle kernel

            fun compute(outSize: Int, inSize: Int): Spans {
                val scale = outSize.toFloat() / inSize.toFloat()
                val invScale = (1.0 / scale).toFloat()
                val kernelScale = Math.max(invScale, 1.0f)
                val spanSize = Math.min(2 * Math.ceil((RADIUS * kernelScale).toDouble()).toInt() + 1, inSize)
                val starts = IntArray(outSize)
                val weights = FloatArray(spanSize * outSize)
                val oneOverKernelScale = 1.0f / kernelScale
                val temp = FloatArray(spanSize)
                for (x in 0 until outSize) {
                    val sample = (x + 0.5f) * invScale
                    if (sample < 0.0f || sample > inSize) continue // never with zero translation
                    val reach = RADIUS * kernelScale
                    var start = Math.ceil((sample - reach - 0.5f).toDouble()).toInt()
                    var end = Math.floor((sample + reach - 0.5f).toDouble()).toInt()
                    start = clamp(start, 0, inSize - 1)
                    end = clamp(end, 0, inSize - 1) + 1
                    val taps = end - start
                    check(taps <= spanSize) { "span of $taps taps exceeds $spanSize" }
                    var total = 0.0f
                    for (k in 0 until taps) {
                        val pos = (start + k).toFloat() + 0.5f - sample
                        val wk = triangle(Math.abs(pos * oneOverKernelScale))
                        temp[k] = wk
                        total += wk
                    }
                    if (Math.abs(total) >= 1000.0f * java.lang.Float.MIN_NORMAL) {
                        val norm = 1.0f / total
                        for (k in 0 until taps) weights[x * spanSize + k] = temp[k] * norm
                    }
                    starts[x] = start
                }
                return Spans(spanSize, starts, weights)
            }

            private fun triangle(x: Float): Float = if (x < 1.0f) 1.0f - x else 0.0f

            private fun clamp(v: Int, lo: Int, hi: Int): Int = Math.max(lo, Math.min(hi, v))
        }
    }
}
