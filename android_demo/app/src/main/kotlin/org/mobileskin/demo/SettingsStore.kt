package org.mobileskin.demo

import android.content.Context
import org.mobileskin.core.InferenceSettings

/**
 * The inference settings (hardware, threads), kept in the app's private SharedPreferences. Backups
 * are off for the whole app, so they stay on this phone. Values that no longer fit this phone fall
 * back to the defaults ([InferenceSettings.fromStored]).
 */
class SettingsStore(context: Context) {
    private val prefs = context.applicationContext.getSharedPreferences(FILE, Context.MODE_PRIVATE)

    val cores: Int = Runtime.getRuntime().availableProcessors()

    fun load(): InferenceSettings = InferenceSettings.fromStored(
        prefs.getString(KEY_HARDWARE, null),
        if (prefs.contains(KEY_THREADS)) prefs.getInt(KEY_THREADS, 0) else null,
        cores
    )

    fun save(settings: InferenceSettings) {
        prefs.edit()
            .putString(KEY_HARDWARE, settings.hardware.name)
            .putInt(KEY_THREADS, settings.threads)
            .apply()
    }

    private companion object {
        const val FILE = "inference_settings"
        const val KEY_HARDWARE = "hardware"
        const val KEY_THREADS = "threads"
    }
}
