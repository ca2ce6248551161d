package org.mobileskin.core

import java.util.Locale

/** The k most probable classes, and the result text the app shows. */
object TopK {
    /**
     * Indices of the [k] largest values of [probs], largest first; ties go to the lower index and
     * NaN ranks below every number. Returns fewer than [k] indices when there are fewer classes.
     */
    fun indices(probs: FloatArray, k: Int): IntArray {
        require(k >= 0) { "k must be >= 0, got $k" }
        val order = probs.indices.sortedWith(Comparator { a, b ->
            val pa = probs[a]
            val pb = probs[b]
            when {
                pa.isNaN() && pb.isNaN() -> a - b
                pa.isNaN() -> 1
                pb.isNaN() -> -1
                pa > pb -> -1
                pa < pb -> 1
                else -> a - b // equal (including 0.0 and -0.0): lower index first
            }
        })
        return order.take(k).toIntArray()
    }

    /** One ranked class: its index, the name shown to people, and its probability. */
    class Entry(val index: Int, val label: String, val probability: Float)

    /** The top [k] classes of [probs] with the spec's full names ("melanoma (mel)"). */
    fun entries(spec: ModelSpec, probs: FloatArray, k: Int): List<Entry> {
        require(probs.size == spec.classes.size) {
            "the model gave ${probs.size} probabilities for ${spec.classes.size} classes"
        }
        return indices(probs, k).map { Entry(it, spec.displayName(it), probs[it]) }
    }

    /**
     * The result text: one line per class ("1. melanoma (mel): 62.3 %"), then the inference time
     * when known.
     */
    fun format(spec: ModelSpec, probs: FloatArray, k: Int, inferenceMs: Double? = null): String {
        val lines = entries(spec, probs, k).mapIndexed { rank, e ->
            String.format(Locale.ROOT, "%d. %s: %.1f %%", rank + 1, e.label, 100.0 * e.probability)
        }.toMutableList()
        if (inferenceMs != null) lines.add(String.format(Locale.ROOT, "Inference: %.1f ms", inferenceMs))
        return lines.joinToString("\n")
    }
}
