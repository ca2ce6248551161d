package org.mobileskin.core

/**
 * A small JSON reader, enough for `model_spec.json` and the golden test files.
 *
 * The core has no dependencies (it compiles with a bare `kotlinc` and no Maven access), so it
 * parses JSON itself. Values become: object -> `Map<String, Any?>` (insertion-ordered),
 * array -> `List<Any?>`, string -> `String`, number -> `Double`, `true`/`false` -> `Boolean`,
 * `null` -> `null`. Numbers are parsed with `String.toDouble()`, so a float32 written by Python as
 * the shortest decimal of its double value comes back bit-exact after `toFloat()`.
 */
object Json {
    /** Parses one JSON document; throws [JsonException] on malformed input or trailing text. */
    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipWhitespace()
        val value = reader.readValue()
        reader.skipWhitespace()
        if (!reader.atEnd()) throw reader.error("unexpected text after the JSON value")
        return value
    }

    private class Reader(private val text: String) {
        private var pos = 0

        fun atEnd(): Boolean = pos >= text.length

        fun error(message: String): JsonException = JsonException("$message at offset $pos")

        fun skipWhitespace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        fun readValue(): Any? {
            if (atEnd()) throw error("unexpected end of input")
            return when (val c = text[pos]) {
                '{' -> readObject()
                '[' -> readArray()
                '"' -> readString()
                't' -> readWord("true", true)
                'f' -> readWord("false", false)
                'n' -> readWord("null", null)
                else -> if (c == '-' || c in '0'..'9') readNumber() else throw error("unexpected '$c'")
            }
        }

        private fun readObject(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++ // '{'
            skipWhitespace()
            if (peek() == '}') {
                pos++
                return map
            }
            while (true) {
                skipWhitespace()
                if (peek() != '"') throw error("expected a string key")
                val key = readString()
                skipWhitespace()
                expect(':')
                skipWhitespace()
                map[key] = readValue()
                skipWhitespace()
                when (next()) {
                    ',' -> {
                    } // next element
                    '}' -> return map
                    else -> throw error("expected ',' or '}' in an object")
                }
            }
        }

        private fun readArray(): List<Any?> {
            val list = ArrayList<Any?>()
            pos++ // '['
            skipWhitespace()
            if (peek() == ']') {
                pos++
                return list
            }
            while (true) {
                skipWhitespace()
                list.add(readValue())
                skipWhitespace()
                when (next()) {
                    ',' -> {
                    } // next element
                    ']' -> return list
                    else -> throw error("expected ',' or ']' in an array")
                }
            }
        }

        private fun readString(): String {
            pos++ // opening quote
            val out = StringBuilder()
            while (true) {
                if (atEnd()) throw error("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> out.append(readEscape())
                    c < ' ' -> throw error("control character in a string")
                    else -> out.append(c)
                }
            }
        }

        private fun readEscape(): Char {
            if (atEnd()) throw error("unterminated escape")
            return when (val c = text[pos++]) {
                '"' -> '"'
                '\\' -> '\\'
                '/' -> '/'
                'b' -> '\b'
                'f' -> '\u000C'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    if (pos + 4 > text.length) throw error("short \\u escape")
                    val hex = text.substring(pos, pos + 4)
                    pos += 4
                    val code = hex.toIntOrNull(16) ?: throw error("bad \\u escape '$hex'")
                    code.toChar()
                }
                else -> throw error("bad escape '\\$c'")
            }
        }

        private fun readNumber(): Double {
            val start = pos
            if (peek() == '-') pos++
            while (pos < text.length && (text[pos].isDigit() || text[pos] in ".eE+-")) pos++
            val literal = text.substring(start, pos)
            if (!NUMBER.matches(literal)) throw error("bad number '$literal'")
            return literal.toDouble()
        }

        private fun readWord(word: String, value: Any?): Any? {
            if (!text.startsWith(word, pos)) throw error("unexpected literal")
            pos += word.length
            return value
        }

        private fun peek(): Char = if (atEnd()) throw error("unexpected end of input") else text[pos]

        private fun next(): Char = peek().also { pos++ }

        private fun expect(c: Char) {
            if (next() != c) throw error("expected '$c'")
        }
    }
}

private val NUMBER = Regex("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")

/** Malformed JSON. */
class JsonException(message: String) : IllegalArgumentException(message)

/** Typed access to parsed JSON, with errors that name the key path. */
internal object JsonPath {
    fun obj(value: Any?, path: String): Map<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        return value as? Map<String, Any?> ?: throw SpecException("$path: expected an object")
    }

    fun list(value: Any?, path: String): List<Any?> =
        value as? List<Any?> ?: throw SpecException("$path: expected an array")

    fun string(value: Any?, path: String): String =
        value as? String ?: throw SpecException("$path: expected a string")

    fun number(value: Any?, path: String): Double =
        value as? Double ?: throw SpecException("$path: expected a number")

    fun int(value: Any?, path: String): Int {
        val d = number(value, path)
        if (d != Math.floor(d) || d < Int.MIN_VALUE || d > Int.MAX_VALUE) {
            throw SpecException("$path: expected an integer, got $d")
        }
        return d.toInt()
    }

    fun strings(value: Any?, path: String): List<String> =
        list(value, path).mapIndexed { i, v -> string(v, "$path[$i]") }

    fun field(map: Map<String, Any?>, key: String, path: String): Any? {
        if (!map.containsKey(key)) throw SpecException("$path: missing \"$key\"")
        return map[key]
    }
}
