package org.mobileskin.demo

import android.content.ActivityNotFoundException
import android.net.Uri
import android.os.Bundle
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.FileProvider
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import org.mobileskin.core.ImagePreprocessor
import org.mobileskin.core.MetadataEncoder
import org.mobileskin.core.MetadataException
import org.mobileskin.core.ModelSpec
import org.mobileskin.core.TopK
import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * One screen: take or pick a photo, enter age, sex and body site, read the top-3 classes.
 *
 * Everything about the model (classes and their names, input size, metadata vocabularies and
 * scaling) comes from `model_spec.json` in the assets; the pixel conversion, the metadata vector
 * and the ranking come from the tested `:core` module. Work happens on one background thread.
 */
class MainActivity : AppCompatActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var spec: ModelSpec? = null
    private var classifier: SkinClassifier? = null
    private var pixels: Photos.Pixels? = null
    private var pendingPhoto: Uri? = null

    private lateinit var photoView: ImageView
    private lateinit var ageField: EditText
    private lateinit var sexSpinner: Spinner
    private lateinit var siteSpinner: Spinner
    private lateinit var classifyButton: Button
    private lateinit var resultText: TextView
    private lateinit var modelInfo: TextView

    private val takePicture = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        val uri = pendingPhoto
        if (saved && uri != null) loadPhoto(uri, deleteAfter = photoFile())
    }

    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) loadPhoto(uri, deleteAfter = null)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        val root = findViewById<android.view.View>(R.id.root)
        ViewCompat.setOnApplyWindowInsetsListener(root) { view, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.ime())
            view.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            insets
        }
        photoView = findViewById(R.id.photo)
        ageField = findViewById(R.id.age)
        sexSpinner = findViewById(R.id.sex)
        siteSpinner = findViewById(R.id.site)
        classifyButton = findViewById(R.id.classify)
        resultText = findViewById(R.id.result)
        modelInfo = findViewById(R.id.modelInfo)

        findViewById<Button>(R.id.takePhoto).setOnClickListener { takePhoto() }
        findViewById<Button>(R.id.pickPhoto).setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        classifyButton.setOnClickListener { classify() }
        pendingPhoto = savedInstanceState?.getString(KEY_PENDING)?.let(Uri::parse)
        loadModel()
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        pendingPhoto?.let { outState.putString(KEY_PENDING, it.toString()) }
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { classifier?.close() }
        worker.shutdown()
    }

    /** Reads model_spec.json (fast, on the UI thread) and builds the interpreter in the background. */
    private fun loadModel() {
        val loaded = try {
            ModelSpec.parse(assets.open(ModelSpec.SPEC_FILE).bufferedReader().use { it.readText() })
        } catch (err: Exception) {
            resultText.text = getString(R.string.app_name) + ": cannot read model_spec.json: ${err.message}"
            return
        }
        spec = loaded
        val encoder = loaded.encoder
        if (encoder != null) {
            fillSpinner(sexSpinner, encoder.sexes)
            fillSpinner(siteSpinner, encoder.localizations)
        } else {
            ageField.isEnabled = false
            sexSpinner.isEnabled = false
            siteSpinner.isEnabled = false
        }
        resultText.text = getString(R.string.loading_model)
        worker.execute {
            val outcome = runCatching { SkinClassifier(assets, loaded) }
            runOnUiThread {
                outcome.onSuccess {
                    classifier = it
                    resultText.text = getString(R.string.no_photo)
                    modelInfo.text = getString(
                        R.string.model_info,
                        loaded.modelFile.ifEmpty { SkinClassifier.MODEL_ASSET },
                        loaded.imageSize,
                        loaded.classes.joinToString(", ")
                    )
                    classifyButton.isEnabled = pixels != null
                    if (pixels != null) classify()
                }.onFailure { resultText.text = "Cannot load the model: ${it.message}" }
            }
        }
    }

    private fun fillSpinner(spinner: Spinner, values: List<String>) {
        val adapter = ArrayAdapter(this, android.R.layout.simple_spinner_item, values)
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        spinner.adapter = adapter
        val unknown = values.indexOf(MetadataEncoder.UNKNOWN)
        if (unknown >= 0) spinner.setSelection(unknown)
    }

    private fun photoFile(): File = File(File(cacheDir, "photos").apply { mkdirs() }, "photo.jpg")

    private fun takePhoto() {
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", photoFile())
        pendingPhoto = uri
        try {
            takePicture.launch(uri)
        } catch (err: ActivityNotFoundException) {
            resultText.text = getString(R.string.no_camera)
        }
    }

    /** Decodes the photo in the background, shows it and classifies it. */
    private fun loadPhoto(uri: Uri, deleteAfter: File?) {
        resultText.text = getString(R.string.running)
        worker.execute {
            val outcome = runCatching { Photos.decode(contentResolver, uri) }
            deleteAfter?.delete() // the camera's photo is not kept once decoded
            runOnUiThread {
                outcome.onSuccess {
                    pixels = it
                    photoView.setImageBitmap(it.preview)
                    classifyButton.isEnabled = classifier != null
                    classify()
                }.onFailure { resultText.text = "Cannot read the photo: ${it.message}" }
            }
        }
    }

    /** Encodes the form, converts the pixels and runs the model; shows the top 3 and the time. */
    private fun classify() {
        val photo = pixels ?: return
        val model = classifier ?: run {
            resultText.text = getString(R.string.loading_model) // classified once it is loaded
            return
        }
        val spec = model.spec
        val metadata = try {
            spec.encoder?.encode(
                MetadataEncoder.parseAge(ageField.text.toString()),
                sexSpinner.selectedItem as String?,
                siteSpinner.selectedItem as String?
            )
        } catch (err: MetadataException) {
            ageField.error = if (err.field == "age") err.message else null
            resultText.text = err.message
            return
        }
        ageField.error = null
        classifyButton.isEnabled = false
        resultText.text = getString(R.string.running)
        worker.execute {
            val outcome = runCatching {
                val image = ImagePreprocessor(spec.imageSize).toModelInput(photo.argb, photo.width, photo.height)
                model.run(image, metadata)
            }
            runOnUiThread {
                classifyButton.isEnabled = true
                outcome.onSuccess { result ->
                    val k = minOf(TOP_K, spec.classes.size)
                    resultText.text = getString(R.string.result_title, k, spec.classes.size) + "\n" +
                        TopK.format(spec, result.probs, k, result.inferenceMs)
                }.onFailure { resultText.text = "The model failed: ${it.message}" }
            }
        }
    }

    private companion object {
        const val TOP_K = 3
        const val KEY_PENDING = "pendingPhoto"
    }
}
