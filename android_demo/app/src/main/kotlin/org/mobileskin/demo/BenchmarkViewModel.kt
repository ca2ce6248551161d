package org.mobileskin.demo

import android.app.Application
import android.os.Build
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.mobileskin.core.BenchmarkPlan
import org.mobileskin.core.BenchmarkRow
import org.mobileskin.core.LatencyStats
import java.util.concurrent.Executors

/**
 * The speed test: for each configuration of a [BenchmarkPlan] (CPU with 1, 2 and 4 threads, then
 * the GPU), build the bundled model, run it `warmup` times untimed and `runs` times timed, and
 * report median and p90 ([LatencyStats]). Each configuration's model is closed before the next is
 * built. Leaving the screen cancels the test between two runs.
 *
 * The input is a mid-grey image and an all-unknown patient: the time of these models does not
 * depend on the pixel values. Times are `CompiledModel.run` alone, as on the main screen.
 */
class BenchmarkViewModel(app: Application) : AndroidViewModel(app) {
    /** What the screen shows: the status line, the table so far, and whether a test runs. */
    data class State(val running: Boolean, val status: String, val table: String)

    private val benchThread = Executors.newSingleThreadExecutor { r -> Thread(r, "skin-benchmark") }
    private val benchDispatcher = benchThread.asCoroutineDispatcher()
    private var job: Job? = null

    private val _state = MutableStateFlow(State(false, app.getString(R.string.benchmark_idle), ""))
    val state: StateFlow<State> = _state.asStateFlow()

    /** Starts a test from the screen's fields; a bad field is reported and nothing runs. */
    fun start(warmupText: String, runsText: String) {
        if (job?.isActive == true) return
        val app = getApplication<Application>()
        val plan = try {
            BenchmarkPlan.create(warmupText, runsText)
        } catch (err: IllegalArgumentException) {
            _state.value = State(false, err.message ?: err.toString(), _state.value.table)
            return
        }
        val bundle = try {
            BundledModel.read(app.assets)
        } catch (err: Exception) {
            _state.value = State(false, err.message ?: err.toString(), "")
            return
        }
        val device = "${Build.MANUFACTURER} ${Build.MODEL}, Android ${Build.VERSION.RELEASE}, " +
            "${Runtime.getRuntime().availableProcessors()} cores; model " +
            (bundle.source?.format ?: SkinClassifier.MODEL_ASSET)
        job = viewModelScope.launch {
            val rows = ArrayList<BenchmarkRow>()
            for (settings in plan.configurations) {
                _state.value = State(true, app.getString(R.string.benchmark_running, settings.label()), table(device, rows, plan))
                val row = withContext(benchDispatcher) {
                    try {
                        SkinClassifier.open(app.assets, bundle.spec, settings).use { model ->
                            val s = bundle.spec.imageSize
                            val image = FloatArray(s * s * 3) { 128f }
                            val metadata = bundle.spec.encoder?.encode(null, null, null)
                            repeat(plan.warmup) {
                                ensureActive()
                                model.run(image, metadata)
                            }
                            val times = ArrayList<Double>(plan.runs)
                            repeat(plan.runs) {
                                ensureActive()
                                times.add(model.run(image, metadata).inferenceMs)
                            }
                            BenchmarkRow(settings, LatencyStats.of(times), null)
                        }
                    } catch (err: CancellationException) {
                        throw err
                    } catch (err: Throwable) {
                        BenchmarkRow(settings, null, err.message ?: err.toString())
                    }
                }
                rows.add(row)
            }
            _state.value = State(false, app.getString(R.string.benchmark_done), table(device, rows, plan))
        }
    }

    private fun table(device: String, rows: List<BenchmarkRow>, plan: BenchmarkPlan): String =
        if (rows.isEmpty()) device else device + "\n" + BenchmarkRow.format(rows, plan.warmup, plan.runs)

    override fun onCleared() {
        // viewModelScope is cancelled: the test stops at its next run; the thread ends after it.
        benchThread.shutdown()
    }
}
