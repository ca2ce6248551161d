package org.mobileskin.core

/**
 * The project's one EXIF rule: a photo is turned the way its EXIF orientation (tag 0x0112, 1-8)
 * says to display it, before it is resized. Python applies the same rule
 * (`mobile_skin.contract.image.apply_orientation`, and the training pipeline's `orient`), so a phone photo
 * stored sideways gives the same answer on the phone and in `python -m mobile_skin.predict`.
 * HAM10000's images carry no orientation (1).
 *
 * The app decodes photos without letting Android turn them (BitmapFactory ignores EXIF), reads
 * the tag with `ExifInterface`, and calls [apply]; the core's tests check it against Python's
 * goldens for all eight values.
 */
object Orientation {
    /** Pixels turned upright: [argb] (row by row, [width] x [height]) for EXIF [orientation]. */
    class Oriented(val argb: IntArray, val width: Int, val height: Int)

    fun apply(argb: IntArray, width: Int, height: Int, orientation: Int): Oriented {
        require(argb.size >= width * height) { "need ${width * height} pixels, got ${argb.size}" }
        val swap = orientation in 5..8
        val outW = if (swap) height else width
        val outH = if (swap) width else height
        val out = IntArray(outW * outH)
        for (y in 0 until outH) {
            for (x in 0 until outW) {
                // (sx, sy): the stored pixel shown at (x, y).
                val sx: Int
                val sy: Int
                when (orientation) {
                    2 -> { sx = width - 1 - x; sy = y }
                    3 -> { sx = width - 1 - x; sy = height - 1 - y }
                    4 -> { sx = x; sy = height - 1 - y }
                    5 -> { sx = y; sy = x }
                    6 -> { sx = y; sy = height - 1 - x }
                    7 -> { sx = width - 1 - y; sy = height - 1 - x }
                    8 -> { sx = width - 1 - y; sy = x }
                    else -> { sx = x; sy = y }
                }
                out[y * outW + x] = argb[sy * width + sx]
            }
        }
        return Oriented(out, outW, outH)
    }
}
