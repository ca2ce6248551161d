package org.mobileskin.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.mobileskin.core.DeviceGolden
import org.mobileskin.core.Hardware
import org.mobileskin.core.ImagePreprocessor
import org.mobileskin.core.InferenceSettings
import org.mobileskin.core.ModelSource
import java.io.FileNotFoundException
import java.io.InputStream
import java.security.MessageDigest

/**
 * The bundled model on the phone gives Python's answer for the committed golden input.
 *
 * Reads `device_golden/device_golden.json` and its image from this test APK's assets
 * (`app/src/androidTest/assets/device_golden/`; format in core's DeviceGolden.kt and the README),
 * decodes the image and encodes the patient as the app does (core's ImagePreprocessor and
 * MetadataEncoder), runs the app's bundled model through [SkinClassifier] on the CPU, and checks
 * every probability against Python's within the golden's tolerance for the bundled format (from
 * `model_source.json`). The golden names the SHA-256 of the model it was made with; a different
 * bundled model fails with a message saying so.
 *
 * Run: `./gradlew :app:connectedDebugAndroidTest` with a phone or emulator attached.
 */
@RunWith(AndroidJUnit4::class)
class BundledModelGoldenTest {
    private val instrumentation = InstrumentationRegistry.getInstrumentation()
    private val testAssets = instrumentation.context.assets
    private val appAssets = instrumentation.targetContext.assets

    @Test
    fun bundledModelMatchesPythonOnTheGoldenInput_cpu1() = checkOnCpu(1)

    @Test
    fun bundledModelMatchesPythonOnTheGoldenInput_cpu4() = checkOnCpu(4)

    private fun checkOnCpu(threads: Int) {
        val golden = DeviceGolden.parse(readTestAsset(DeviceGolden.FILE).toString(Charsets.UTF_8))
        val bundle = BundledModel.read(appAssets)
        val source = bundle.source ?: failWith("${ModelSource.FILE} is missing: build the app with copyModel")
        assertEquals("the golden's classes are the model's", golden.classes, bundle.spec.classes)

        val modelSha = appAssets.open(SkinClassifier.MODEL_ASSET).use { sha256(it) }
        assertEquals("model_source.json describes the bundled model", source.modelSha256, modelSha)

        val imageBytes = readTestAsset(golden.imageFile)
        golden.imageSha256?.let {
            assertEquals("the golden's image is the committed file", it, DeviceGolden.hex(digest(imageBytes)))
        }
        val options = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inScaled = false
        }
        val bitmap = BitmapFactory.decodeByteArray(imageBytes, 0, imageBytes.size, options)
            ?: failWith("cannot decode ${golden.imageFile}")
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val image = ImagePreprocessor(bundle.spec.imageSize).toModelInput(argb, bitmap.width, bitmap.height)
        val metadata = bundle.spec.encoder?.encode(golden.age, golden.sex, golden.localization)

        SkinClassifier.open(appAssets, bundle.spec, InferenceSettings(Hardware.CPU, threads)).use { model ->
            val result = model.run(image, metadata)
            val verdict = golden.check(source.format, modelSha, result.probs)
            assertTrue(verdict.message, verdict.passed)
        }
    }

    private fun readTestAsset(name: String): ByteArray = try {
        testAssets.open("$GOLDEN_DIR/$name").use { it.readBytes() }
    } catch (err: FileNotFoundException) {
        failWith(
            "$GOLDEN_DIR/$name is not in app/src/androidTest/assets/: commit the golden written by the " +
                "Python-side generator (format: core's DeviceGolden.kt, README \"The instrumented test\")"
        )
    }

    private fun sha256(input: InputStream): String {
        val md = MessageDigest.getInstance("SHA-256")
        val buffer = ByteArray(1 shl 16)
        while (true) {
            val n = input.read(buffer)
            if (n < 0) break
            md.update(buffer, 0, n)
        }
        return DeviceGolden.hex(md.digest())
    }

    private fun failWith(message: String): Nothing = throw AssertionError(message)

    private fun digest(bytes: ByteArray): ByteArray = MessageDigest.getInstance("SHA-256").digest(bytes)

    private companion object {
        const val GOLDEN_DIR = "device_golden"
    }
}
