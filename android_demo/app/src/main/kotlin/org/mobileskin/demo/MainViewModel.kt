package org.mobileskin.demo

import android.app.Application
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.SavedStateHandle
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.mobileskin.core.Hardware
import org.mobileskin.core.ImagePreprocessor
import org.mobileskin.core.InferenceSettings
import org.mobileskin.core.MetadataEncoder
import org.mobileskin.core.MetadataException
import org.mobileskin.core.ModelState
import org.mobileskin.core.ScreenState
import org.mobileskin.core.TopK
import org.mobileskin.core.Work
import java.io.File
import java.util.concurrent.Executors

/**
 * The main screen's state and work, kept across rotation: the model, the photo, the form, the
 * result (issue 15).
 *
 * Threads: the classifier lives on one model thread owned by this ViewModel ([modelThread]); it is
 * created, run and closed only there, so a run never overlaps a close. Coroutines run in
 * [viewModelScope], which is cancelled when the ViewModel is cleared (the activity finishes, not
 * on rotation); the activity only reads [state] while it is started, so nothing calls back into a
 * destroyed activity. [onCleared] queues the close behind whatever the model thread is doing, so a
 * classifier that was still being created is closed too.
 */
class MainViewModel(app: Application, private val saved: SavedStateHandle) : AndroidViewModel(app) {
    /** The patient form, kept here (and in the saved state) rather than in the views. */
    data class Form(val ageText: String, val sex: String?, val site: String?)

    private val modelThread = Executors.newSingleThreadExecutor { r -> Thread(r, "skin-model") }
    private val modelDispatcher = modelThread.asCoroutineDispatcher()
    private val settingsStore = SettingsStore(app)

    /** Touched only on [modelThread]. */
    private var classifier: SkinClassifier? = null
    private var cleared = false

    /** Classify the photo as soon as the model is ready (set while it loads). */
    private var classifyWhenReady = false

    /** The bundled spec and source, or null with [bundleError] set. */
    val bundle: BundledModel?
    private val bundleError: String?

    val cores: Int get() = settingsStore.cores

    private val _state: MutableStateFlow<ScreenState<Photos.Pixels>>
    val state: StateFlow<ScreenState<Photos.Pixels>>

    init {
        var error: String? = null
        bundle = try {
            BundledModel.read(app.assets) // small JSON files: fine on the main thread
        } catch (err: Exception) {
            error = err.message ?: err.toString()
            null
        }
        bundleError = error
        val settings = settingsStore.load()
        var initial = ScreenState<Photos.Pixels>(ModelState.Loading(settings))
        if (bundle == null) initial = initial.modelFailed(app.getString(R.string.model_failed, error), false)
        _state = MutableStateFlow(initial)
        state = _state.asStateFlow()
        if (bundle != null) loadModel(settings)
    }

    var form: Form
        get() = Form(
            saved.get<String>(KEY_AGE) ?: "",
            saved.get<String>(KEY_SEX) ?: MetadataEncoder.UNKNOWN,
            saved.get<String>(KEY_SITE) ?: MetadataEncoder.UNKNOWN
        )
        set(value) {
            saved[KEY_AGE] = value.ageText
            saved[KEY_SEX] = value.sex
            saved[KEY_SITE] = value.site
        }

    /** The camera's target file while the camera app runs (survives process death). */
    var pendingCameraUri: Uri?
        get() = saved.get<Uri>(KEY_PENDING)
        set(value) {
            saved[KEY_PENDING] = value
        }

    val settings: InferenceSettings
        get() = when (val m = _state.value.model) {
            is ModelState.Loading -> m.settings
            is ModelState.Ready -> m.settings
            is ModelState.Failed -> settingsStore.load()
        }

    /** New settings from the settings dialog: stored, and the model rebuilt with them. */
    fun applySettings(newSettings: InferenceSettings) {
        val current = _state.value.model
        if (current is ModelState.Ready && current.settings == newSettings) return
        settingsStore.save(newSettings)
        if (bundle != null) loadModel(newSettings)
    }

    private fun loadModel(settings: InferenceSettings) {
        val bundle = bundle ?: return
        classifyWhenReady = _state.value.photo != null
        _state.update { it.modelLoading(settings) }
        viewModelScope.launch {
            val outcome = withContext(modelDispatcher) {
                runCatching {
                    check(!cleared) { "cleared" }
                    val old = classifier
                    classifier = null
                    old?.close()
                    SkinClassifier.open(getApplication<Application>().assets, bundle.spec, settings)
                        .also { classifier = it }
                }
            }
            val app = getApplication<Application>()
            outcome.onSuccess {
                _state.update { s -> s.modelReady(settings, describe(bundle, settings)) }
                if (classifyWhenReady) classify()
            }.onFailure { err ->
                val gpu = settings.hardware == Hardware.GPU
                val message = app.getString(
                    if (gpu) R.string.model_failed_gpu else R.string.model_failed,
                    err.message ?: err.toString()
                )
                _state.update { s -> s.modelFailed(message, fixableBySettings = gpu) }
            }
        }
    }

    private fun describe(bundle: BundledModel, settings: InferenceSettings): String {
        val source = bundle.source
        val format = if (source == null) SkinClassifier.MODEL_ASSET
        else "${source.format} (${source.status ?: "no parity row"}, sha256 ${source.modelSha256.take(12)})"
        return getApplication<Application>().getString(
            R.string.model_info, format, bundle.spec.imageSize, settings.label(), bundle.spec.classes.joinToString(", "),
            bundle.spec.calibrationLabel
        )
    }

    /** A problem with getting a photo (no camera app): shown like a photo that cannot be read. */
    fun notice(message: String) {
        _state.update { it.photoFailed(message) }
    }

    /** Decodes a picked or taken photo in the background, then classifies it with the form. */
    fun loadPhoto(uri: Uri, deleteAfter: File?) {
        if (!_state.value.photoButtonsEnabled) {
            deleteAfter?.delete()
            return
        }
        _state.update { it.readingPhoto() }
        val resolver = getApplication<Application>().contentResolver
        viewModelScope.launch {
            val outcome = withContext(Dispatchers.IO) {
                try {
                    runCatching { Photos.decode(resolver, uri) }
                } finally {
                    deleteAfter?.delete() // the camera's photo is not kept once decoded
                }
            }
            outcome.onSuccess { pixels ->
                _state.update { it.photoRead(pixels) }
                classify()
            }.onFailure { err ->
                val app = getApplication<Application>()
                _state.update { it.photoFailed(app.getString(R.string.photo_failed, err.message ?: err.toString())) }
            }
        }
    }

    /**
     * Encodes the form, converts the pixels and runs the model. While the model loads the request
     * waits; after a model error nothing runs (the error stays on screen).
     */
    fun classify() {
        val s = _state.value
        val photo = s.photo ?: return
        val bundle = bundle ?: return
        when (s.model) {
            is ModelState.Loading -> {
                classifyWhenReady = true
                return
            }
            is ModelState.Failed -> return
            is ModelState.Ready -> if (s.work != Work.NONE) return
        }
        classifyWhenReady = false
        val spec = bundle.spec
        val f = form
        val metadata = try {
            spec.encoder?.encode(MetadataEncoder.parseAge(f.ageText), f.sex, f.site)
        } catch (err: MetadataException) {
            _state.update { it.classifyFailed(err.message ?: err.field, err.field) }
            return
        }
        _state.update { it.classifying() }
        viewModelScope.launch {
            val outcome = withContext(modelDispatcher) {
                runCatching {
                    val model = classifier ?: error("the model is not loaded")
                    val image = ImagePreprocessor(spec.imageSize).toModelInput(photo.argb, photo.width, photo.height)
                    model.run(image, metadata)
                }
            }
            val app = getApplication<Application>()
            outcome.onSuccess { result ->
                val k = minOf(TOP_K, spec.classes.size)
                val text = app.getString(R.string.result_title, k, spec.classes.size) + "\n" +
                    TopK.format(spec, result.probs, k, result.inferenceMs)
                _state.update { it.classified(text) }
            }.onFailure { err ->
                _state.update { it.classifyFailed(app.getString(R.string.model_run_failed, err.message ?: err.toString())) }
            }
        }
    }

    override fun onCleared() {
        // viewModelScope is already cancelled. Close on the model thread, after any run or load
        // still in progress there; shutdown() lets that queued close run, then stops the thread.
        modelThread.execute {
            cleared = true
            val last = classifier
            classifier = null
            try {
                last?.close()
            } catch (err: Throwable) {
                // Nothing to report to: the screen is gone. An exception here must not kill the app.
            }
        }
        modelThread.shutdown()
    }

    private companion object {
        const val TOP_K = 3
        const val KEY_AGE = "form.age"
        const val KEY_SEX = "form.sex"
        const val KEY_SITE = "form.site"
        const val KEY_PENDING = "pendingPhoto"
    }
}
