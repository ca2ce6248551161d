package org.mobileskin.core

/** Where LiteRT runs the model. */
enum class Hardware {
    /** LiteRT's CPU accelerator (XNNPACK), with [InferenceSettings.threads] threads. */
    CPU,

    /** LiteRT's GPU accelerator alone; the thread count does not apply. */
    GPU
}

/**
 * The user's inference settings: hardware and CPU threads. Construct through [validated] or
 * [fromStored] (which never throw on bad stored values); the constructor checks the ranges.
 */
class InferenceSettings(val hardware: Hardware, val threads: Int) {
    init {
        require(threads in 1..MAX_THREADS) { "threads: expected 1..$MAX_THREADS, got $threads" }
    }

    /** "CPU x4" or "GPU": how the benchmark table and the model line name this configuration. */
    fun label(): String = if (hardware == Hardware.GPU) "GPU" else "CPU x$threads"

    override fun equals(other: Any?): Boolean =
        other is InferenceSettings && other.hardware == hardware && other.threads == threads

    override fun hashCode(): Int = hardware.hashCode() * 31 + threads

    override fun toString(): String = label()

    companion object {
        const val MAX_THREADS = 8
        const val DEFAULT_THREADS = 4

        /** The thread counts the settings screen offers on a phone with [cores] cores. */
        fun threadChoices(cores: Int): List<Int> {
            val limit = maxOf(1, minOf(cores, MAX_THREADS))
            return (1..limit).toList()
        }

        /** CPU with 4 threads, or fewer on a phone with fewer cores. */
        fun defaults(cores: Int): InferenceSettings =
            InferenceSettings(Hardware.CPU, maxOf(1, minOf(DEFAULT_THREADS, cores, MAX_THREADS)))

        /**
         * Settings from the form: [hardwareName] is "CPU" or "GPU" (any case, trimmed); [threads]
         * must be in 1..min([cores], [MAX_THREADS]). Throws [IllegalArgumentException] naming the
         * field otherwise.
         */
        fun validated(hardwareName: String, threads: Int, cores: Int): InferenceSettings {
            val hardware = parseHardware(hardwareName)
                ?: throw IllegalArgumentException("hardware: expected CPU or GPU, got '${hardwareName.trim()}'")
            val limit = maxOf(1, minOf(cores, MAX_THREADS))
            require(threads in 1..limit) { "threads: expected 1..$limit on this phone, got $threads" }
            return InferenceSettings(hardware, threads)
        }

        /**
         * Settings as stored (SharedPreferences strings); anything missing or invalid, such as a
         * thread count from a phone with more cores, falls back to [defaults].
         */
        fun fromStored(hardwareName: String?, threads: Int?, cores: Int): InferenceSettings {
            val fallback = defaults(cores)
            if (hardwareName == null || threads == null) return fallback
            return try {
                validated(hardwareName, threads, cores)
            } catch (err: IllegalArgumentException) {
                fallback
            }
        }

        /** "cpu", " GPU " -> the hardware; anything else -> null. Locale-independent. */
        fun parseHardware(name: String): Hardware? {
            val upper = StringBuilder()
            for (c in name.trim()) upper.append(Character.toUpperCase(c))
            val key = upper.toString()
            for (h in Hardware.values()) if (h.name == key) return h
            return null
        }
    }
}
