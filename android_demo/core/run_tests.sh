#!/usr/bin/env bash
# Compile the app's pure-Kotlin core and its tests with a bare kotlinc (no Gradle, no Maven, no
# Android SDK) and run them against the golden cases Python wrote. Exit status: 0 when every
# test passed, 1 when one failed, 2 when the toolchain is missing.
#
# Written for Debian's kotlin package (Kotlin 1.3; apt-get install kotlin); the core avoids APIs
# that newer compilers reject, since the Gradle build compiles the same sources with Kotlin 2.x.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v kotlinc >/dev/null 2>&1; then
  echo "run_tests.sh: kotlinc not found; install it with: apt-get install kotlin" >&2
  exit 2
fi

out=build/kotlinc
jar="$out/core-tests.jar"
rm -rf "$out"
mkdir -p "$out"

start=$(date +%s)
# kotlinc 1.3 on JDK 13+ prints a harmless "-Xverify:none deprecated" JVM warning: filter it out.
kotlinc -nowarn src/main/kotlin src/test/kotlin -d "$jar" 2> >(grep -v -- '-Xverify:none' >&2)
echo "compiled core + tests in $(($(date +%s) - start)) s"

# The runner's last line is the summary: "android-core: N passed, M failed".
exec kotlin -cp "$jar" org.mobileskin.core.CoreTestsKt src/test/resources/golden \
  2> >(grep -v -- '-Xverify:none' >&2)
