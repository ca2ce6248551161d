import org.gradle.api.DefaultTask
import org.gradle.api.GradleException
import org.gradle.api.file.ConfigurableFileCollection
import org.gradle.api.file.DirectoryProperty
import org.gradle.api.provider.Property
import org.gradle.api.tasks.Input
import org.gradle.api.tasks.InputFiles
import org.gradle.api.tasks.Optional
import org.gradle.api.tasks.OutputDirectory
import org.gradle.api.tasks.PathSensitive
import org.gradle.api.tasks.PathSensitivity
import org.gradle.api.tasks.TaskAction
import org.mobileskin.core.ExportChoice
import org.mobileskin.core.ExportChoiceException
import org.mobileskin.core.ExportChooser
import org.mobileskin.core.ModelSource
import org.mobileskin.core.ParityRow
import java.io.File
import java.security.MessageDigest

/**
 * Copies the export the app bundles into a generated assets directory: `model.tflite`,
 * `model_spec.json`, and `model_source.json` (which export it is, its parity status, its SHA-256,
 * and why it was taken).
 *
 * Which export (the rules are [ExportChooser], tested in core/run_tests.sh):
 * - [exportDir] set (`-PmobileSkinExport=<run>/export/<format>`): that directory, unless the run's
 *   parity.json marks its format FAIL;
 * - otherwise the first format of [formats] (`-PmobileSkinFormats`, default
 *   [ExportChooser.TFLITE_FORMATS]) whose row in `<runDir>/export/parity.json` has status PASS and
 *   whose files exist. No such format stops the build with the parity table's path.
 *
 * It logs one line saying which export it took and why.
 */
abstract class CopyModelTask : DefaultTask() {
    /** An export directory named explicitly (absolute), or absent. */
    @get:Input
    @get:Optional
    abstract val exportDir: Property<String>

    /** The training run (absolute): `<runDir>/export/parity.json` and `<runDir>/export/<format>/`. */
    @get:Input
    abstract val runDir: Property<String>

    /** The preference order as given (`-PmobileSkinFormats`); empty for the default order. */
    @get:Input
    abstract val formats: Property<String>

    /** parity.json and every candidate's files, so the copy reruns when any of them changes. */
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.ABSOLUTE)
    abstract val candidateFiles: ConfigurableFileCollection

    /** Set by AGP (addGeneratedSourceDirectory in app/build.gradle.kts). */
    @get:OutputDirectory
    abstract val outputDir: DirectoryProperty

    @TaskAction
    fun copy() {
        val (dir, choice) = try {
            val explicit = exportDir.orNull
            if (explicit != null) chooseExplicit(File(explicit)) else chooseFromRun(File(runDir.get()))
        } catch (err: ExportChoiceException) {
            throw GradleException("copyModel: ${err.message}")
        }
        val model = File(dir, choice.file)
        val spec = File(dir, ExportChooser.SPEC_FILE)
        val missing = listOf(model, spec).filterNot { it.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "copyModel: ${missing.joinToString(" and ") { it.name }} missing in $dir. Build the export " +
                    "from the repository root with `python export/to_tflite.py ...` (it writes " +
                    "<run>/export/<format>/ with model.tflite and model_spec.json, and the parity table " +
                    "<run>/export/parity.json), or point the app at another one: -PmobileSkinRun=<run> " +
                    "or -PmobileSkinExport=<run>/export/<format>."
            )
        }
        val out = outputDir.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        model.copyTo(File(out, MODEL_ASSET), overwrite = true)
        spec.copyTo(File(out, ExportChooser.SPEC_FILE), overwrite = true)
        val source = ModelSource(choice.format, choice.status, sha256(model), choice.reason)
        File(out, ModelSource.FILE).writeText(source.toJson())
        logger.lifecycle("copyModel: ${choice.reason}; from $dir")
    }

    private fun chooseExplicit(dir: File): Pair<File, ExportChoice> {
        val parity = File(dir.parentFile, PARITY_FILE)
        val rows = if (parity.isFile) ParityRow.parseTable(parity.readText(), parity.path) else null
        return dir to ExportChooser.explicit(dir.name, rows, parity.path)
    }

    private fun chooseFromRun(run: File): Pair<File, ExportChoice> {
        val exportRoot = File(run, "export")
        val parity = File(exportRoot, PARITY_FILE)
        if (!parity.isFile) {
            throw GradleException(
                "copyModel: no parity table at $parity. The exporter writes it with each export " +
                    "(`python export/to_tflite.py ...` from the repository root); choose another run " +
                    "with -PmobileSkinRun=<run>, or one export directory with -PmobileSkinExport=<dir>."
            )
        }
        val rows = ParityRow.parseTable(parity.readText(), parity.path)
        val preference = ExportChooser.parsePreference(formats.get())
        val choice = ExportChooser.choose(rows, preference, parity.path) { format, file ->
            File(exportRoot, "$format/$file").isFile && File(exportRoot, "$format/${ExportChooser.SPEC_FILE}").isFile
        }
        return File(exportRoot, choice.format) to choice
    }

    private fun sha256(file: File): String {
        val digest = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val buffer = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    companion object {
        const val MODEL_ASSET = "model.tflite"
        const val PARITY_FILE = "parity.json"
    }
}
