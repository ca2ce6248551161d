package org.mobileskin.demo

import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import androidx.activity.viewModels
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.launch
import org.mobileskin.core.BenchmarkPlan

/**
 * Speed on this phone: warm-up and timed runs of the bundled model with CPU x1, x2, x4 and the
 * GPU; median and p90 per configuration. The test lives in [BenchmarkViewModel], so rotation
 * does not restart it; leaving the screen stops it.
 */
class BenchmarkActivity : AppCompatActivity() {
    private val vm: BenchmarkViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_benchmark)
        padForSystemBars(findViewById<View>(R.id.benchmarkRoot))
        val warmup = findViewById<EditText>(R.id.warmupRuns)
        val runs = findViewById<EditText>(R.id.timedRuns)
        val start = findViewById<Button>(R.id.startBenchmark)
        val status = findViewById<TextView>(R.id.benchmarkStatus)
        val table = findViewById<TextView>(R.id.benchmarkTable)
        if (savedInstanceState == null) {
            warmup.setText(BenchmarkPlan.DEFAULT_WARMUP.toString())
            runs.setText(BenchmarkPlan.DEFAULT_RUNS.toString())
        }
        start.setOnClickListener { vm.start(warmup.text.toString(), runs.text.toString()) }
        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                vm.state.collect { s ->
                    status.text = s.status
                    table.text = s.table
                    start.isEnabled = !s.running
                    warmup.isEnabled = !s.running
                    runs.isEnabled = !s.running
                }
            }
        }
    }
}
