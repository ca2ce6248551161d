package org.mobileskin.core

/** The model's state on the main screen. */
sealed class ModelState {
    /** Being (re)built with [settings]. */
    class Loading(val settings: InferenceSettings) : ModelState()

    /** Ready with [settings]; [description] is the line shown under the result. */
    class Ready(val settings: InferenceSettings, val description: String) : ModelState()

    /**
     * Could not be loaded. [fixableBySettings] is true when other settings may help (the GPU
     * accelerator failed), false when the bundled files are wrong (a bad spec or model), which no
     * setting can fix.
     */
    class Failed(val message: String, val fixableBySettings: Boolean) : ModelState()
}

/** What the screen is busy with, if anything. */
enum class Work { NONE, READING_PHOTO, CLASSIFYING }

/** The status line: its kind and, for kinds that carry one, the text. */
class StatusLine(val kind: Kind, val text: String?) {
    enum class Kind { MODEL_FAILED, READING_PHOTO, RUNNING, NOTICE, LOADING_MODEL, RESULT, NO_PHOTO, READY }
}

/**
 * The main screen's state, kept in the ViewModel so it survives rotation: the model, the photo
 * ([P] is the app's decoded photo type), what is running, the last result and the last photo or
 * form problem. Every change returns a new state; the text and button rules live here so they are
 * tested on the JVM.
 *
 * Rules: a model error stays on screen whatever else happens, and disables the photo buttons and
 * Classify until the model loads (issue 15: a picked photo used to replace the error with
 * "Loading the model..." for good).
 */
data class ScreenState<P>(
    val model: ModelState,
    val photo: P? = null,
    val work: Work = Work.NONE,
    val result: String? = null,
    val notice: String? = null,
    val noticeField: String? = null
) {
    fun modelLoading(settings: InferenceSettings): ScreenState<P> =
        copy(model = ModelState.Loading(settings), result = null)

    fun modelReady(settings: InferenceSettings, description: String): ScreenState<P> =
        copy(model = ModelState.Ready(settings, description))

    fun modelFailed(message: String, fixableBySettings: Boolean): ScreenState<P> =
        copy(model = ModelState.Failed(message, fixableBySettings), work = Work.NONE, result = null)

    fun readingPhoto(): ScreenState<P> = copy(work = Work.READING_PHOTO, notice = null, noticeField = null)

    /** A new photo replaces the old one and its result. */
    fun photoRead(photo: P): ScreenState<P> =
        copy(photo = photo, work = Work.NONE, result = null, notice = null, noticeField = null)

    /** The photo could not be read: the previous photo and result, if any, stay. */
    fun photoFailed(message: String): ScreenState<P> = copy(work = Work.NONE, notice = message, noticeField = null)

    fun classifying(): ScreenState<P> = copy(work = Work.CLASSIFYING, notice = null, noticeField = null)

    fun classified(resultText: String): ScreenState<P> =
        copy(work = Work.NONE, result = resultText, notice = null, noticeField = null)

    /**
     * The model run failed, or the form is invalid ([field] names the form field, e.g. "age",
     * so the screen can mark it): say so and drop the old result.
     */
    fun classifyFailed(message: String, field: String? = null): ScreenState<P> =
        copy(work = Work.NONE, result = null, notice = message, noticeField = field)

    /** Take photo and Pick photo: off while the model is broken or a photo is being read. */
    val photoButtonsEnabled: Boolean
        get() = model !is ModelState.Failed && work != Work.READING_PHOTO

    /** Classify: only with a loaded model, a photo, and nothing running. */
    val classifyEnabled: Boolean
        get() = model is ModelState.Ready && photo != null && work == Work.NONE

    /** The settings and benchmark buttons: off while something runs or the model is (re)loading. */
    val settingsEnabled: Boolean
        get() = work == Work.NONE && model !is ModelState.Loading

    /** A photo is waiting for the model to load before it is classified. */
    val waitingForModel: Boolean
        get() = model is ModelState.Loading && photo != null && result == null

    /** The status line, by priority: model error, work in progress, problem, loading, result, hints. */
    fun line(): StatusLine {
        val m = model
        return when {
            m is ModelState.Failed -> StatusLine(StatusLine.Kind.MODEL_FAILED, m.message)
            work == Work.READING_PHOTO -> StatusLine(StatusLine.Kind.READING_PHOTO, null)
            work == Work.CLASSIFYING -> StatusLine(StatusLine.Kind.RUNNING, null)
            notice != null -> StatusLine(StatusLine.Kind.NOTICE, notice)
            m is ModelState.Loading -> StatusLine(StatusLine.Kind.LOADING_MODEL, null)
            result != null -> StatusLine(StatusLine.Kind.RESULT, result)
            photo == null -> StatusLine(StatusLine.Kind.NO_PHOTO, null)
            else -> StatusLine(StatusLine.Kind.READY, null)
        }
    }
}
