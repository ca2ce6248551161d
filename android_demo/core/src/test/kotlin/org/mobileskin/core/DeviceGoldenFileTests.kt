package org.mobileskin.core

import java.io.File
import java.security.MessageDigest

/** Where the instrumented test's committed golden lives, relative to `android_demo/core`. */
const val DEVICE_GOLDEN_DIR = "../app/src/androidTest/assets/device_golden"

/**
 * The committed device golden (written by `python -m mobile_skin.device_golden`, read on the phone
 * by `BundledModelGoldenTest`) parses with [DeviceGolden], names its image correctly, and its own
 * answers pass its check for every format while an answer beyond the tolerance fails. Proves the
 * Python generator's output is what the Kotlin parser reads; the models are not committed, so the
 * phone's numbers are checked only on a phone.
 */
fun committedDeviceGoldenTests(t: TestRunner, dir: File) {
    t.test("device golden: the committed file parses and its image is the one it names") {
        val golden = readCommitted(dir)
        assertEquals(listOf("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"), golden.classes, "classes")
        assertTrue(golden.expected.isNotEmpty()) { "no expected answers" }
        assertEquals(golden.expected.keys, golden.tolerances.keys, "formats with a tolerance")
        val image = File(dir, golden.imageFile)
        assertTrue(image.isFile) { "image missing: $image" }
        val sha = DeviceGolden.hex(MessageDigest.getInstance("SHA-256").digest(image.readBytes()))
        assertEquals(golden.imageSha256, sha, "image sha256")
    }
    t.test("device golden: the committed answers pass their own check, and fail beyond it") {
        val golden = readCommitted(dir)
        for ((format, want) in golden.expected) {
            var sum = 0.0
            for (p in want.probs) sum += p
            assertTrue(Math.abs(sum - 1.0) < 1e-4) { "$format: probs sum to $sum" }
            val same = golden.check(format, want.modelSha256, want.probs)
            assertTrue(same.passed) { same.message }
            val tol = golden.tolerances[format]!!.maxAbsDiff
            val off = want.probs.copyOf()
            val low = TopK.indices(off, off.size).last()
            off[low] = (off[low] + 3 * tol).toFloat()
            val far = golden.check(format, want.modelSha256, off)
            assertTrue(!far.passed) { "$format: 3x the tolerance passed: ${far.message}" }
        }
    }
}

private fun readCommitted(dir: File): DeviceGolden {
    val file = File(dir, DeviceGolden.FILE)
    if (!file.isFile) fail("$file is missing: write it with python -m mobile_skin.device_golden RUN")
    return DeviceGolden.parse(file.readText())
}
