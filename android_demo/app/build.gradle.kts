// The demo app. Kotlin is compiled by AGP's built-in Kotlin support (AGP >= 9), so no
// org.jetbrains.kotlin.android plugin is applied here.
plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "org.mobileskin.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "org.mobileskin.demo"
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // The interpreter memory-maps the model straight from the APK: keep it uncompressed.
        noCompress += "tflite"
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.androidx.activity)
    implementation(libs.androidx.appcompat)
    implementation(libs.androidx.core)
    implementation(libs.androidx.exifinterface)
}

// ---------------------------------------------------------------------------------------------
// The model is built, not committed: copy model.tflite and model_spec.json from the exporter's
// output directory (python export/to_tflite.py --int8 writes <run>/export/tflite_int8/) into
// generated assets. Choose the directory with -PmobileSkinExport=DIR (relative to android_demo/
// or absolute); the default is the latest training run of this repository.

/** Copies the exported model and its spec into a generated assets directory. */
abstract class CopyModelTask : DefaultTask() {
    /** The export directory (absolute path). */
    @get:Input
    abstract val exportDir: Property<String>

    /** The two files, declared as inputs so the copy reruns when the model changes. */
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.NAME_ONLY)
    abstract val modelFiles: ConfigurableFileCollection

    /** Set by AGP (addGeneratedSourceDirectory below). */
    @get:OutputDirectory
    abstract val outputDir: DirectoryProperty

    @TaskAction
    fun copy() {
        val names = listOf("model.tflite", "model_spec.json")
        val dir = File(exportDir.get())
        val missing = names.filterNot { File(dir, it).isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "mobile_skin model export not found: ${missing.joinToString(" and ")} missing in $dir.\n" +
                    "Build it from the repository root with `python export/to_tflite.py --int8` " +
                    "(it writes <run>/export/tflite_int8/ with model.tflite and model_spec.json), " +
                    "or point the app at another export: ./gradlew assembleDebug " +
                    "-PmobileSkinExport=/path/to/<run>/export/tflite_int8"
            )
        }
        val out = outputDir.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        for (name in names) File(dir, name).copyTo(File(out, name), overwrite = true)
        logger.lifecycle("copyModel: ${names.joinToString()} from $dir")
    }
}

val mobileSkinExport: File = rootDir.resolve(
    providers.gradleProperty("mobileSkinExport").getOrElse("../runs/latest/export/tflite_int8")
).normalize()

val copyModel = tasks.register<CopyModelTask>("copyModel") {
    group = "build"
    description = "Copies model.tflite and model_spec.json from -PmobileSkinExport into the app's assets."
    exportDir.set(mobileSkinExport.absolutePath)
    modelFiles.from(File(mobileSkinExport, "model.tflite"), File(mobileSkinExport, "model_spec.json"))
}

androidComponents {
    onVariants { variant ->
        variant.sources.assets?.addGeneratedSourceDirectory(copyModel, CopyModelTask::outputDir)
    }
}

// Fail at the start of a build, with the message above, rather than at packaging.
tasks.named("preBuild") {
    dependsOn(copyModel)
}
