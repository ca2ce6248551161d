package org.mobileskin.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import androidx.exifinterface.media.ExifInterface

/**
 * Decoding a photo into the ARGB pixels [org.mobileskin.core.ImagePreprocessor] takes.
 *
 * The photo is turned upright (EXIF orientation) and, when its long side exceeds [MAX_SIDE],
 * decoded smaller by Android; everything after that (the antialiased resize to the model's size)
 * is the core's, identical to Python's. Dermoscopy images like HAM10000's (600 x 450) are decoded
 * at full size.
 */
object Photos {
    const val MAX_SIDE = 2048

    /** A decoded photo: ARGB ints row by row, as `Bitmap.getPixels` gives them. */
    class Pixels(val argb: IntArray, val width: Int, val height: Int, val preview: Bitmap)

    fun decode(resolver: ContentResolver, uri: Uri): Pixels {
        val bitmap = if (Build.VERSION.SDK_INT >= 28) decodeModern(resolver, uri) else decodeLegacy(resolver, uri)
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return Pixels(argb, bitmap.width, bitmap.height, bitmap)
    }

    /** API 28+: ImageDecoder applies EXIF orientation itself. */
    private fun decodeModern(resolver: ContentResolver, uri: Uri): Bitmap {
        val source = ImageDecoder.createSource(resolver, uri)
        return ImageDecoder.decodeBitmap(source) { decoder, info, _ ->
            decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE // getPixels needs a software bitmap
            val w = info.size.width
            val h = info.size.height
            val longSide = maxOf(w, h)
            if (longSide > MAX_SIDE) {
                decoder.setTargetSize(w * MAX_SIDE / longSide, h * MAX_SIDE / longSide)
            }
        }.let { if (it.config == Bitmap.Config.ARGB_8888) it else it.copy(Bitmap.Config.ARGB_8888, false) }
    }

    /** API 24-27: BitmapFactory, power-of-two subsampling, and EXIF rotation by hand. */
    private fun decodeLegacy(resolver: ContentResolver, uri: Uri): Bitmap {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        var sample = 1
        while (maxOf(bounds.outWidth, bounds.outHeight) / sample > MAX_SIDE) sample *= 2
        val options = BitmapFactory.Options().apply {
            inSampleSize = sample
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bitmap = resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IllegalArgumentException("not a readable image: $uri")
        val orientation = resolver.openInputStream(uri).use { stream ->
            if (stream == null) ExifInterface.ORIENTATION_NORMAL
            else ExifInterface(stream).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        val matrix = Matrix()
        when (orientation) {
            ExifInterface.ORIENTATION_ROTATE_90 -> matrix.postRotate(90f)
            ExifInterface.ORIENTATION_ROTATE_180 -> matrix.postRotate(180f)
            ExifInterface.ORIENTATION_ROTATE_270 -> matrix.postRotate(270f)
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> matrix.postScale(-1f, 1f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> matrix.postScale(1f, -1f)
            ExifInterface.ORIENTATION_TRANSPOSE -> { matrix.postRotate(90f); matrix.postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_TRANSVERSE -> { matrix.postRotate(270f); matrix.postScale(-1f, 1f) }
            else -> return bitmap
        }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, false)
    }
}
