package org.mobileskin.core

/**
 * The patient-metadata encoding read from `model_spec.json` (`inputs.metadata.encoding`): the
 * Kotlin twin of Python's `mobile_skin.contract.encoding.MetadataEncoding.encode`.
 *
 * Vector: `age / ageScale` at the age offset (an unknown age becomes [ageUnknownValue]), then, when
 * the spec has `age_missing_indicator`, a 0/1 "age unknown" feature at [ageMissingOffset]; a
 * one-hot sex at the sex offset and a one-hot site at the localization offset. Sex and site are
 * matched after trimming and lower-casing; null, "", "nan" and "none" mean "unknown". An age
 * outside 0..[maxAge] or a word outside the vocabularies is rejected with [MetadataException].
 */
class MetadataEncoder(
    val ageScale: Double,
    val ageUnknownValue: Double,
    val sexes: List<String>,
    val localizations: List<String>,
    val ageOffset: Int = 0,
    val sexOffset: Int = 1,
    val localizationOffset: Int = 1 + sexes.size,
    val maxAge: Double = DEFAULT_MAX_AGE,
    /** Index of the missing-age indicator, or null for an encoding without one. */
    val ageMissingOffset: Int? = null
) {
    /** Length D of the vector. */
    val size: Int = 1 + (if (ageMissingOffset != null) 1 else 0) + sexes.size + localizations.size

    init {
        if (!(ageScale > 0.0)) throw SpecException("encoding.age_scale: expected > 0, got $ageScale")
        if (sexes.isEmpty() || localizations.isEmpty()) throw SpecException("encoding: empty vocabulary")
        if (sexes.toSet().size != sexes.size || localizations.toSet().size != localizations.size) {
            throw SpecException("encoding: repeated word in a vocabulary")
        }
        // The segments must tile 0 until size exactly, whatever their order.
        val segments = (listOf(ageOffset to 1, sexOffset to sexes.size, localizationOffset to localizations.size) +
            (if (ageMissingOffset != null) listOf(ageMissingOffset to 1) else emptyList()))
            .sortedBy { it.first }
        var next = 0
        for ((offset, length) in segments) {
            if (offset != next) throw SpecException("encoding.offsets do not tile the vector: $segments")
            next += length
        }
    }

    /**
     * Which fields of a patient are unknown ("age", "sex", "localization"), in that order: the
     * model answers from the image alone for those. Values that would be rejected count as known.
     */
    fun unknownFields(age: Double?, sex: String?, site: String?): List<String> {
        val out = ArrayList<String>()
        if (age == null || age.isNaN()) out.add("age")
        if (isUnknownWord(sex)) out.add("sex")
        if (isUnknownWord(site)) out.add("localization")
        return out
    }

    /**
     * Encodes one patient.
     *
     * @param age years, or null (or NaN) when unknown.
     * @param sex one of [sexes] in any case, surrounded by any whitespace; null or blank is unknown.
     * @param site one of [localizations], matched the same way.
     * @throws MetadataException naming the field when a value is out of range or vocabulary.
     */
    fun encode(age: Double?, sex: String?, site: String?): FloatArray {
        val vector = FloatArray(size)
        vector[ageOffset] = encodeAge(age)
        if (ageMissingOffset != null && (age == null || age.isNaN())) vector[ageMissingOffset] = 1.0f
        vector[sexOffset + index(sexes, sex, "sex")] = 1.0f
        vector[localizationOffset + index(localizations, site, "site")] = 1.0f
        return vector
    }

    private fun encodeAge(age: Double?): Float {
        if (age == null || age.isNaN()) return ageUnknownValue.toFloat()
        if (!(age >= 0.0 && age <= maxAge)) {
            throw MetadataException("age", "age ${formatNumber(age)} is outside 0..${formatNumber(maxAge)}")
        }
        // Python divides in float64 and stores float32: the same two roundings here.
        return (age / ageScale).toFloat()
    }

    private fun isUnknownWord(value: String?): Boolean = normalise(value) == UNKNOWN

    private fun normalise(value: String?): String {
        val key = if (value == null) UNKNOWN else lowerCase(value.trim())
        return if (key == "" || key == "nan" || key == "none") UNKNOWN else key
    }

    private fun index(vocab: List<String>, value: String?, field: String): Int {
        val key = normalise(value)
        val i = vocab.indexOf(key)
        if (i < 0) {
            throw MetadataException(field, "unknown $field '$value'; expected one of: ${vocab.joinToString(", ")}")
        }
        return i
    }

    companion object {
        /** Oldest accepted age when the spec has no `max_age` (specs written before it existed). */
        const val DEFAULT_MAX_AGE = 120.0
        const val UNKNOWN = "unknown"

        /**
         * Parses the text of an age field: blank means unknown (null); otherwise a number in years.
         * Range checks happen in [encode].
         */
        fun parseAge(text: String?): Double? {
            val t = text?.trim() ?: return null
            if (t.isEmpty()) return null
            return t.toDoubleOrNull() ?: throw MetadataException("age", "age '$text' is not a number")
        }

        /** Reads `inputs.metadata.encoding` of `model_spec.json`. */
        fun fromJson(enc: Map<String, Any?>): MetadataEncoder {
            val path = "inputs.metadata.encoding"
            val indicator = when (val flag = enc["age_missing_indicator"]) {
                null -> false
                is Boolean -> flag
                else -> throw SpecException("$path.age_missing_indicator: expected true or false, got $flag")
            }
            val expected = if (indicator) setOf("age", "age_missing", "sex", "localization")
            else setOf("age", "sex", "localization")
            val layout = enc["layout"]?.let { JsonPath.strings(it, "$path.layout") }
            if (layout != null && layout.toSet() != expected) {
                throw SpecException("$path.layout: expected ${expected.joinToString(", ")}, got $layout")
            }
            val sexes = JsonPath.strings(JsonPath.field(enc, "sexes", path), "$path.sexes")
            val sites = JsonPath.strings(JsonPath.field(enc, "localizations", path), "$path.localizations")
            val ageScale = JsonPath.number(JsonPath.field(enc, "age_scale", path), "$path.age_scale")
            val ageUnknown = JsonPath.number(JsonPath.field(enc, "age_unknown_value", path), "$path.age_unknown_value")
            val maxAge = enc["max_age"]?.let { JsonPath.number(it, "$path.max_age") } ?: DEFAULT_MAX_AGE
            val offsets = enc["offsets"]?.let { JsonPath.obj(it, "$path.offsets") }
            fun offset(name: String, default: Int): Int =
                if (offsets == null) default
                else JsonPath.int(JsonPath.field(offsets, name, "$path.offsets"), "$path.offsets.$name")
            val first = if (indicator) 2 else 1
            val encoder = MetadataEncoder(
                ageScale, ageUnknown, sexes, sites,
                offset("age", 0), offset("sex", first), offset("localization", first + sexes.size), maxAge,
                if (indicator) offset("age_missing", 1) else null
            )
            val declared = enc["size"]?.let { JsonPath.int(it, "$path.size") }
            if (declared != null && declared != encoder.size) {
                throw SpecException("$path.size is $declared but the vocabularies give ${encoder.size}")
            }
            return encoder
        }

        /**
         * Lower case, character by character with `Character.toLowerCase` (locale-independent).
         * Written out because Kotlin 1.3 (Debian) has only `toLowerCase`, which Kotlin 2.1+
         * refuses to compile, and newer compilers only `lowercase`, which 1.3 lacks.
         */
        private fun lowerCase(s: String): String {
            val out = StringBuilder(s.length)
            for (c in s) out.append(Character.toLowerCase(c))
            return out.toString()
        }

        private fun formatNumber(x: Double): String =
            if (x == Math.floor(x) && Math.abs(x) < 1e15) x.toLong().toString() else x.toString()
    }
}

/** A metadata value the encoding rejects; [field] is "age", "sex" or "site". */
class MetadataException(val field: String, message: String) : IllegalArgumentException(message)
