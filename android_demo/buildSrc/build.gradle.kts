// Build logic for the app: the copyModel task (src/main/kotlin/CopyModelTask.kt).
//
// It compiles the pure-Kotlin core's sources (../core/src/main/kotlin) into the build's own
// classpath, so the Gradle task chooses the bundled export with the same ExportChooser that
// core/run_tests.sh tests, not with a second copy of the rules.
plugins {
    `kotlin-dsl`
}

repositories {
    mavenCentral()
}

kotlin {
    sourceSets.named("main") {
        kotlin.srcDir(layout.projectDirectory.dir("../core/src/main/kotlin"))
    }
}
