"""The Kafka Streams + MOJO app builds through contestants/kstreams.py and its Java unit tests pass.

The Java tests run the topology on Kafka Streams' TopologyTestDriver with a tiny H2O GBM MOJO
(contestants/kstreams_mojo/src/test/resources/tiny_gbm.zip). The end-to-end run on a real broker is separate.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from contestants import kstreams

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        shutil.which("mvn") is None or shutil.which("java") is None, reason="needs Java 17 and Maven on PATH"
    ),
]


def test_build_jar_is_runnable_and_cached() -> None:
    jar = kstreams.build_jar()
    assert jar.is_file() and jar.name == kstreams.JAR_NAME
    with zipfile.ZipFile(jar) as z:
        manifest = z.read("META-INF/MANIFEST.MF").decode()
        names = set(z.namelist())
    assert "Main-Class: io.github.kafkamodelharness.kstreams.Main" in manifest
    assert "hex/genmodel/MojoModel.class" in names
    assert "org/apache/kafka/streams/KafkaStreams.class" in names
    mtime = jar.stat().st_mtime_ns
    assert kstreams.build_jar() == jar  # unchanged sources: no rebuild
    assert jar.stat().st_mtime_ns == mtime
    stamp = jar.parent / kstreams.STAMP_NAME
    assert stamp.read_text().strip() == kstreams.source_key()


def test_bad_arguments_are_one_line_and_exit_2() -> None:
    jar = kstreams.build_jar()
    proc = subprocess.run(
        ["java", "-jar", str(jar), "--bootstrap", "127.0.0.1:1", "--input-topic", "t", "--output-topic", "u"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kstreams-mojo: missing required option --application-id"
    assert proc.stdout == ""


def test_start_reports_a_missing_mojo() -> None:
    app = kstreams.KStreamsApp()
    with pytest.raises(kstreams.KStreamsError, match="exited with code 2 before READY: .*MOJO file not found"):
        app.start(
            kstreams.KStreamsConfig("127.0.0.1:1", "in", "out", "in.dlq", "g", "/no/such/model.zip", ["f1", "f2"])
        )
    assert not app.running


def test_properties_text_escapes_for_java() -> None:
    text = kstreams.properties_text({"sasl.jaas.config": 'a="b c";', "x y": True, "k": "é\n"})
    assert text == 'sasl.jaas.config=a\\="b c";\nx\\ y=true\nk=\\u00e9\\n\n'


def test_java_unit_tests_pass() -> None:
    ok, tail = kstreams.run_maven_tests()
    assert ok, tail
