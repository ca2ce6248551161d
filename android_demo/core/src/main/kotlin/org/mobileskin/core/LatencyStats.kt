package org.mobileskin.core

import java.util.Locale

/**
 * Summary of one benchmark configuration's timed runs, in milliseconds.
 *
 * Percentiles use linear interpolation between the two nearest ranks, as numpy's default
 * `np.percentile(x, q)` does (rank `q / 100 * (n - 1)`), so the phone's median and p90 mean the
 * same as the Python benchmark's (`mobile_skin/bench/worker.py`).
 */
class LatencyStats private constructor(
    val runs: Int,
    val medianMs: Double,
    val p90Ms: Double,
    val minMs: Double,
    val maxMs: Double,
    val meanMs: Double
) {
    companion object {
        /** Statistics of [samplesMs]; throws on an empty list or a NaN, infinite or negative time. */
        fun of(samplesMs: List<Double>): LatencyStats {
            require(samplesMs.isNotEmpty()) { "no timed runs" }
            for (s in samplesMs) {
                require(!s.isNaN() && !s.isInfinite() && s >= 0.0) { "invalid time $s ms" }
            }
            val sorted = samplesMs.sorted()
            return LatencyStats(
                runs = sorted.size,
                medianMs = percentile(sorted, 50.0),
                p90Ms = percentile(sorted, 90.0),
                minMs = sorted.first(),
                maxMs = sorted.last(),
                meanMs = sorted.sum() / sorted.size
            )
        }

        /** The [q]-th percentile (0..100) of ascending [sorted] values, linearly interpolated. */
        fun percentile(sorted: List<Double>, q: Double): Double {
            require(sorted.isNotEmpty()) { "no values" }
            require(q >= 0.0 && q <= 100.0) { "percentile must be in 0..100, got $q" }
            for (i in 1 until sorted.size) {
                require(sorted[i - 1] <= sorted[i]) { "values are not sorted" }
            }
            val rank = q / 100.0 * (sorted.size - 1)
            val lo = Math.floor(rank).toInt()
            val hi = Math.ceil(rank).toInt()
            if (lo == hi) return sorted[lo]
            val frac = rank - lo
            return sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/**
 * What the on-phone benchmark runs: [warmup] untimed runs, then [runs] timed ones, for each of
 * [configurations] (hardware and threads). Built with [BenchmarkPlan.create], which validates.
 */
class BenchmarkPlan private constructor(
    val warmup: Int,
    val runs: Int,
    val configurations: List<InferenceSettings>
) {
    companion object {
        const val MAX_WARMUP = 100
        const val MAX_RUNS = 1000
        const val DEFAULT_WARMUP = 5
        const val DEFAULT_RUNS = 50

        /** CPU with 1, 2 and 4 threads, then the GPU (the thread count does not apply to it). */
        val DEFAULT_CONFIGURATIONS: List<InferenceSettings> = listOf(
            InferenceSettings(Hardware.CPU, 1),
            InferenceSettings(Hardware.CPU, 2),
            InferenceSettings(Hardware.CPU, 4),
            InferenceSettings(Hardware.GPU, InferenceSettings.DEFAULT_THREADS)
        )

        /**
         * A plan from the benchmark screen's text fields; throws [IllegalArgumentException] naming
         * the field when a number is missing or out of range (warm-up 0..[MAX_WARMUP], runs
         * 1..[MAX_RUNS]).
         */
        fun create(
            warmupText: String,
            runsText: String,
            configurations: List<InferenceSettings> = DEFAULT_CONFIGURATIONS
        ): BenchmarkPlan {
            val warmup = parseCount("warm-up runs", warmupText, 0, MAX_WARMUP)
            val runs = parseCount("timed runs", runsText, 1, MAX_RUNS)
            require(configurations.isNotEmpty()) { "no configuration to benchmark" }
            return BenchmarkPlan(warmup, runs, configurations)
        }

        private fun parseCount(field: String, text: String, min: Int, max: Int): Int {
            val value = text.trim().toIntOrNull()
                ?: throw IllegalArgumentException("$field: expected a whole number, got '${text.trim()}'")
            require(value in min..max) { "$field: expected $min..$max, got $value" }
            return value
        }
    }
}

/** One benchmark configuration's outcome: statistics, or the error that stopped it. */
class BenchmarkRow(val settings: InferenceSettings, val stats: LatencyStats?, val error: String?) {
    companion object {
        /** The table the benchmark screen shows (fixed-width, one row per configuration). */
        fun format(rows: List<BenchmarkRow>, warmup: Int, runs: Int): String {
            val lines = ArrayList<String>()
            lines.add(String.format(Locale.ROOT, "%d warm-up + %d timed runs each; ms per run", warmup, runs))
            lines.add(String.format(Locale.ROOT, "%-10s %8s %8s %8s %8s", "config", "median", "p90", "min", "max"))
            for (row in rows) {
                val s = row.stats
                lines.add(
                    if (s != null) {
                        String.format(
                            Locale.ROOT, "%-10s %8.2f %8.2f %8.2f %8.2f",
                            row.settings.label(), s.medianMs, s.p90Ms, s.minMs, s.maxMs
                        )
                    } else {
                        String.format(Locale.ROOT, "%-10s failed: %s", row.settings.label(), row.error ?: "unknown error")
                    }
                )
            }
            return lines.joinToString("\n")
        }
    }
}
