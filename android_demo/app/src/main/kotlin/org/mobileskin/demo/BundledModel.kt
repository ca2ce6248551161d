package org.mobileskin.demo

import android.content.res.AssetManager
import org.mobileskin.core.ModelSource
import org.mobileskin.core.ModelSpec
import java.io.FileNotFoundException

/**
 * What the build put into the assets next to `model.tflite`: the spec, and which export it is
 * (`model_source.json`, written by the copyModel task; null in an APK built before it existed).
 */
class BundledModel(val spec: ModelSpec, val source: ModelSource?) {
    companion object {
        /** Reads both files; throws with a message naming the file when the spec is missing or bad. */
        fun read(assets: AssetManager): BundledModel {
            val specText = try {
                assets.open(ModelSpec.SPEC_FILE).bufferedReader().use { it.readText() }
            } catch (err: FileNotFoundException) {
                throw IllegalStateException("${ModelSpec.SPEC_FILE} is not in the app; rebuild it (copyModel)", err)
            }
            val spec = try {
                ModelSpec.parse(specText)
            } catch (err: IllegalArgumentException) {
                throw IllegalStateException("cannot read ${ModelSpec.SPEC_FILE}: ${err.message}", err)
            }
            val source = try {
                ModelSource.parse(assets.open(ModelSource.FILE).bufferedReader().use { it.readText() })
            } catch (err: Exception) {
                null // informational only
            }
            return BundledModel(spec, source)
        }
    }
}
