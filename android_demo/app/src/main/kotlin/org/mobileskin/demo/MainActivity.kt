package org.mobileskin.demo

import android.content.ActivityNotFoundException
import android.content.Intent
import android.os.Bundle
import android.text.Editable
import android.text.TextWatcher
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.RadioButton
import android.widget.Spinner
import android.widget.TextView
import android.widget.Toast
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.appcompat.app.AlertDialog
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.FileProvider
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.launch
import org.mobileskin.core.Hardware
import org.mobileskin.core.InferenceSettings
import org.mobileskin.core.MetadataEncoder
import org.mobileskin.core.ModelState
import org.mobileskin.core.ScreenState
import org.mobileskin.core.StatusLine
import java.io.File

/**
 * One screen: take or pick a photo, enter age, sex and body site, read the top-3 classes.
 *
 * The activity only draws [MainViewModel.state] and forwards clicks and form edits; the model,
 * the photo, the form and the result live in the ViewModel, so rotation keeps them and does not
 * reload the model. The state is collected only while the activity is started, so no result is
 * ever delivered to a destroyed activity.
 */
class MainActivity : AppCompatActivity() {
    private val vm: MainViewModel by viewModels()

    private lateinit var photoView: ImageView
    private lateinit var takePhotoButton: Button
    private lateinit var pickPhotoButton: Button
    private lateinit var ageField: EditText
    private lateinit var sexSpinner: Spinner
    private lateinit var siteSpinner: Spinner
    private lateinit var classifyButton: Button
    private lateinit var settingsButton: Button
    private lateinit var benchmarkButton: Button
    private lateinit var resultText: TextView
    private lateinit var modelInfo: TextView

    private var shownPhoto: Photos.Pixels? = null
    private var settingsDialog: AlertDialog? = null

    private val takePicture = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        val uri = vm.pendingCameraUri
        vm.pendingCameraUri = null
        if (saved && uri != null) vm.loadPhoto(uri, deleteAfter = photoFile()) else photoFile().delete()
    }

    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) vm.loadPhoto(uri, deleteAfter = null)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        padForSystemBars(findViewById<View>(R.id.root))
        photoView = findViewById(R.id.photo)
        takePhotoButton = findViewById(R.id.takePhoto)
        pickPhotoButton = findViewById(R.id.pickPhoto)
        ageField = findViewById(R.id.age)
        sexSpinner = findViewById(R.id.sex)
        siteSpinner = findViewById(R.id.site)
        classifyButton = findViewById(R.id.classify)
        settingsButton = findViewById(R.id.settings)
        benchmarkButton = findViewById(R.id.benchmark)
        resultText = findViewById(R.id.result)
        modelInfo = findViewById(R.id.modelInfo)

        bindForm()
        takePhotoButton.setOnClickListener { takePhoto() }
        pickPhotoButton.setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        classifyButton.setOnClickListener { vm.classify() }
        settingsButton.setOnClickListener { showSettings() }
        benchmarkButton.setOnClickListener { startActivity(Intent(this, BenchmarkActivity::class.java)) }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                vm.state.collect { render(it) }
            }
        }
    }

    override fun onDestroy() {
        settingsDialog?.dismiss() // not retained across rotation; avoids a leaked window
        settingsDialog = null
        super.onDestroy()
    }

    /** Fills the form from the ViewModel (the source of truth) and sends every edit back to it. */
    private fun bindForm() {
        val encoder = vm.bundle?.spec?.encoder
        val form = vm.form
        if (encoder == null) {
            ageField.isEnabled = false
            sexSpinner.isEnabled = false
            siteSpinner.isEnabled = false
            return
        }
        ageField.setText(form.ageText)
        ageField.addTextChangedListener(object : TextWatcher {
            override fun beforeTextChanged(s: CharSequence?, start: Int, count: Int, after: Int) {}
            override fun onTextChanged(s: CharSequence?, start: Int, before: Int, count: Int) {}
            override fun afterTextChanged(s: Editable?) {
                vm.form = vm.form.copy(ageText = s?.toString() ?: "")
            }
        })
        bindSpinner(sexSpinner, encoder.sexes, form.sex) { vm.form = vm.form.copy(sex = it) }
        bindSpinner(siteSpinner, encoder.localizations, form.site) { vm.form = vm.form.copy(site = it) }
    }

    private fun bindSpinner(spinner: Spinner, values: List<String>, selected: String?, onChange: (String) -> Unit) {
        val adapter = ArrayAdapter(this, android.R.layout.simple_spinner_item, values)
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        spinner.adapter = adapter
        val index = values.indexOf(selected ?: MetadataEncoder.UNKNOWN)
        val fallback = values.indexOf(MetadataEncoder.UNKNOWN)
        spinner.setSelection(if (index >= 0) index else maxOf(fallback, 0), false)
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
                onChange(values[position])
            }

            override fun onNothingSelected(parent: AdapterView<*>?) {}
        }
    }

    private fun render(s: ScreenState<Photos.Pixels>) {
        val line = s.line()
        resultText.text = when (line.kind) {
            StatusLine.Kind.MODEL_FAILED, StatusLine.Kind.NOTICE, StatusLine.Kind.RESULT -> line.text
            StatusLine.Kind.READING_PHOTO -> getString(R.string.reading_photo)
            StatusLine.Kind.RUNNING -> getString(R.string.running)
            StatusLine.Kind.LOADING_MODEL -> getString(R.string.loading_model)
            StatusLine.Kind.NO_PHOTO -> getString(R.string.no_photo)
            StatusLine.Kind.READY -> getString(R.string.ready_to_classify)
        }
        takePhotoButton.isEnabled = s.photoButtonsEnabled
        pickPhotoButton.isEnabled = s.photoButtonsEnabled
        classifyButton.isEnabled = s.classifyEnabled
        val model = s.model
        settingsButton.isEnabled = s.settingsEnabled && (model !is ModelState.Failed || model.fixableBySettings)
        benchmarkButton.isEnabled = vm.bundle != null && s.settingsEnabled
        modelInfo.text = if (model is ModelState.Ready) model.description else ""
        ageField.error = if (s.noticeField == "age") s.notice else null
        val photo = s.photo
        if (photo !== shownPhoto) {
            photoView.setImageBitmap(photo?.preview)
            shownPhoto = photo
        }
    }

    private fun photoFile(): File = File(File(cacheDir, "photos").apply { mkdirs() }, "photo.jpg")

    private fun takePhoto() {
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", photoFile())
        vm.pendingCameraUri = uri
        try {
            takePicture.launch(uri)
        } catch (err: ActivityNotFoundException) {
            vm.pendingCameraUri = null
            vm.notice(getString(R.string.no_camera))
        }
    }

    /** Hardware (CPU or GPU) and CPU threads; applying them rebuilds the model. */
    private fun showSettings() {
        val view = layoutInflater.inflate(R.layout.dialog_settings, null)
        val cpu = view.findViewById<RadioButton>(R.id.hardwareCpu)
        val gpu = view.findViewById<RadioButton>(R.id.hardwareGpu)
        val threads = view.findViewById<Spinner>(R.id.threads)
        val choices = InferenceSettings.threadChoices(vm.cores)
        val adapter = ArrayAdapter(this, android.R.layout.simple_spinner_item, choices.map { it.toString() })
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        threads.adapter = adapter
        val current = vm.settings
        if (current.hardware == Hardware.GPU) gpu.isChecked = true else cpu.isChecked = true
        threads.setSelection(maxOf(0, choices.indexOf(current.threads)))
        settingsDialog?.dismiss()
        settingsDialog = AlertDialog.Builder(this)
            .setTitle(R.string.settings_title)
            .setView(view)
            .setPositiveButton(R.string.settings_apply) { _, _ ->
                try {
                    val hardware = if (gpu.isChecked) Hardware.GPU.name else Hardware.CPU.name
                    vm.applySettings(InferenceSettings.validated(hardware, choices[threads.selectedItemPosition], vm.cores))
                } catch (err: IllegalArgumentException) {
                    Toast.makeText(this, err.message, Toast.LENGTH_LONG).show()
                }
            }
            .setNegativeButton(android.R.string.cancel, null)
            .show()
    }
}
