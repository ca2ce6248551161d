// The demo app. Kotlin is compiled by AGP's built-in Kotlin support (AGP >= 9), so no
// org.jetbrains.kotlin.android plugin is applied here.
import org.mobileskin.core.ExportChooser

plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "org.mobileskin.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "org.mobileskin.demo"
        // 26, not the 24 that LiteRT 2.3.0's AAR declares: see README "LiteRT version and minSdk".
        minSdk = 26
        targetSdk = 36
        versionCode = 2
        versionName = "0.2.0"
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
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
        // LiteRT maps the model straight from the APK: keep it uncompressed.
        noCompress += "tflite"
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.androidx.activity)
    implementation(libs.androidx.appcompat)
    implementation(libs.androidx.core)
    implementation(libs.androidx.exifinterface)
    implementation(libs.androidx.lifecycle.viewmodel)
    implementation(libs.androidx.lifecycle.runtime)
    implementation(libs.kotlinx.coroutines.android)

    androidTestImplementation(libs.androidx.test.runner)
    androidTestImplementation(libs.androidx.test.core)
    androidTestImplementation(libs.androidx.test.ext.junit)
    androidTestImplementation(libs.junit)
}

// ---------------------------------------------------------------------------------------------
// The model is built, not committed. copyModel (buildSrc/src/main/kotlin/CopyModelTask.kt) copies
// model.tflite and model_spec.json of one export into generated assets, with model_source.json
// saying which export it is. Which one:
//   -PmobileSkinExport=DIR   exactly that export directory (<run>/export/<format>), as before;
//   otherwise, from the run -PmobileSkinRun=RUN (default ../runs/latest), the first format of
//   -PmobileSkinFormats=a,b,... (default tflite_int8, tflite_dynamic, tflite_fp16,
//   tflite_fp32) whose row in RUN/export/parity.json has status PASS.
// Paths are absolute or relative to android_demo/. The properties can also go in gradle.properties.

val mobileSkinExport: File? = providers.gradleProperty("mobileSkinExport").orNull
    ?.let { rootDir.resolve(it).normalize() }
val mobileSkinRun: File = rootDir.resolve(
    providers.gradleProperty("mobileSkinRun").getOrElse("../runs/latest")
).normalize()
val mobileSkinFormats: String = providers.gradleProperty("mobileSkinFormats").getOrElse("")

val copyModel = tasks.register<CopyModelTask>("copyModel") {
    group = "build"
    description = "Copies the best export that passed the parity gate (or -PmobileSkinExport) into the app's assets."
    runDir.set(mobileSkinRun.absolutePath)
    formats.set(mobileSkinFormats)
    val exportRoot = File(mobileSkinRun, "export")
    candidateFiles.from(File(exportRoot, CopyModelTask.PARITY_FILE))
    for (format in ExportChooser.TFLITE_FORMATS) {
        candidateFiles.from(File(exportRoot, "$format/model.tflite"), File(exportRoot, "$format/model_spec.json"))
    }
    mobileSkinExport?.let { dir ->
        exportDir.set(dir.absolutePath)
        candidateFiles.from(
            File(dir, "model.tflite"),
            File(dir, "model_spec.json"),
            File(dir.parentFile, CopyModelTask.PARITY_FILE)
        )
    }
}

androidComponents {
    onVariants { variant ->
        variant.sources.assets?.addGeneratedSourceDirectory(copyModel, CopyModelTask::outputDir)
    }
}

// Fail at the start of a build, with copyModel's message, rather than at packaging.
tasks.named("preBuild") {
    dependsOn(copyModel)
}
