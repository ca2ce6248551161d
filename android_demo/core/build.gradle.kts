// The app's pure-Kotlin core: no Android imports, so it also compiles with a bare kotlinc
// (Debian's 1.3; see run_tests.sh) and is tested on the JVM against Python's golden cases.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// The tests are a plain main() (no JUnit download needed): run them as part of `check`.
val goldenTest by tasks.registering(JavaExec::class) {
    group = "verification"
    description = "Runs the core tests against src/test/resources/golden (written by Python)."
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("org.mobileskin.core.CoreTestsKt")
    args(layout.projectDirectory.dir("src/test/resources/golden").asFile.path)
}

tasks.named("check") {
    dependsOn(goldenTest)
}

// No JUnit tests to discover (Gradle 9 fails a Test task that finds none): goldenTest runs them.
tasks.named<Test>("test") {
    enabled = false
}
