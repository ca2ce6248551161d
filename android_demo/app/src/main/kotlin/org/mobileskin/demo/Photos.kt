package org.mobileskin.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import org.mobileskin.core.Orientation

/**
 * Decoding a photo into the upright ARGB pixels [org.mobileskin.core.ImagePreprocessor] takes.
 *
 * One EXIF rule on both sides: the photo is decoded as stored (BitmapFactory does not turn it),
 * its EXIF orientation is read with [ExifInterface], and the core's [Orientation.apply] turns the
 * pixels exactly as Python's `mobile_skin.contract.image.apply_orientation` does (tested against Python's
 * goldens for all eight orientations). Photos up to [MAX_SIDE] pixels on the long side are decoded
 * at full size, so the antialiased resize starts from the same pixels as Python's (12 MP phone
 * photos included); only larger ones are subsampled by Android first, which Python does not do.
 */
object Photos {
    const val MAX_SIDE = 6000

    /** A decoded photo: upright ARGB ints row by row, as `Bitmap.getPixels` gives them. */
    class Pixels(val argb: IntArray, val width: Int, val height: Int, val preview: Bitmap)

    fun decode(resolver: ContentResolver, uri: Uri): Pixels {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IllegalArgumentException("not a readable image: $uri")
        var sample = 1
        while (maxOf(bounds.outWidth, bounds.outHeight) / sample > MAX_SIDE) sample *= 2
        val options = BitmapFactory.Options().apply {
            inSampleSize = sample
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val stored = resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IllegalArgumentException("not a readable image: $uri")
        val orientation = resolver.openInputStream(uri).use { stream ->
            if (stream == null) ExifInterface.ORIENTATION_NORMAL
            else ExifInterface(stream).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        val argb = IntArray(stored.width * stored.height)
        stored.getPixels(argb, 0, stored.width, 0, 0, stored.width, stored.height)
        val upright = Orientation.apply(argb, stored.width, stored.height, orientation)
        val preview = if (upright.argb === argb) stored
        else Bitmap.createBitmap(upright.argb, upright.width, upright.height, Bitmap.Config.ARGB_8888).also {
            stored.recycle()
        }
        return Pixels(upright.argb, upright.width, upright.height, preview)
    }
}
