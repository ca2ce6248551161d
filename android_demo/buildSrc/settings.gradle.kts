// buildSrc is a build of its own; it only needs Maven Central (for the Kotlin standard library).
rootProject.name = "buildSrc"
