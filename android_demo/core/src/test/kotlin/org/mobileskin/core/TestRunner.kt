package org.mobileskin.core

/**
 * A minimal test runner (no JUnit: the core's tests must run with nothing but `kotlinc`).
 *
 * `test(name) { ... }` runs one case and records a failure instead of stopping; [finish] prints
 * `android-core: N passed, M failed` and gives the exit status.
 */
class TestRunner {
    private var passed = 0
    private val failures = ArrayList<String>()

    fun test(name: String, body: () -> Unit) {
        try {
            body()
            passed++
            println("PASS $name")
        } catch (err: Throwable) {
            failures.add(name)
            println("FAIL $name: ${err::class.java.simpleName}: ${err.message}")
        }
    }

    /** Prints the summary line and returns the process exit status (0 when everything passed). */
    fun finish(): Int {
        if (failures.isNotEmpty()) println("failed: ${failures.joinToString(", ")}")
        println("android-core: $passed passed, ${failures.size} failed")
        return if (failures.isEmpty()) 0 else 1
    }
}

class AssertionFailed(message: String) : AssertionError(message)

fun fail(message: String): Nothing = throw AssertionFailed(message)

fun assertTrue(condition: Boolean, message: () -> String) {
    if (!condition) fail(message())
}

fun <T> assertEquals(expected: T, actual: T, what: String = "value") {
    if (expected != actual) fail("$what: expected <$expected>, got <$actual>")
}

inline fun <reified T : Throwable> assertThrows(what: String, block: () -> Unit): T {
    try {
        block()
    } catch (err: Throwable) {
        if (err is T) return err
        fail("$what: expected ${T::class.java.simpleName}, got ${err::class.java.simpleName}: ${err.message}")
    }
    fail("$what: expected ${T::class.java.simpleName}, nothing was thrown")
}
