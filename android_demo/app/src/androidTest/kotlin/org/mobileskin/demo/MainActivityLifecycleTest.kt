package org.mobileskin.demo

import androidx.lifecycle.ViewModelProvider
import androidx.test.core.app.ActivityScenario
import androidx.test.ext.junit.runners.AndroidJUnit4
import org.junit.Assert.assertSame
import org.junit.Test
import org.junit.runner.RunWith

/**
 * Rotation (activity recreation) keeps the ViewModel, hence the loaded model, the photo and the
 * result, and recreating while the model is still loading does not crash (issue 15).
 *
 * Run: `./gradlew :app:connectedDebugAndroidTest` with a phone or emulator attached.
 */
@RunWith(AndroidJUnit4::class)
class MainActivityLifecycleTest {
    @Test
    fun recreationKeepsTheViewModel() {
        ActivityScenario.launch(MainActivity::class.java).use { scenario ->
            var before: MainViewModel? = null
            scenario.onActivity { before = ViewModelProvider(it)[MainViewModel::class.java] }
            scenario.recreate() // right away: the model is most likely still loading
            scenario.recreate()
            scenario.onActivity { assertSame(before, ViewModelProvider(it)[MainViewModel::class.java]) }
        }
    }

    @Test
    fun finishingWhileLoadingDoesNotCrash() {
        // Closing the scenario destroys the activity and clears the ViewModel while the model
        // thread may still be compiling; the close is queued behind it on that thread.
        ActivityScenario.launch(MainActivity::class.java).use { }
        ActivityScenario.launch(MainActivity::class.java).use { it.recreate() }
    }
}
