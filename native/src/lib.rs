//! harness_native: the scoring loop's hot path (micro-batches consumed, decoded into one float64 matrix,
//! their results encoded and produced with headers, offsets committed) and the native relay, on librdkafka.
//! The loop's logic — guarantees, isolation, outages, operations — stays in harness/scoring (Python); this
//! module does the per-record work in one call per micro-batch. See docs/native-loop.md.

use pyo3::prelude::*;

mod batch;
mod consumer;
mod decode;
mod kafka;
mod producer;
mod relay;
mod results;

#[pymodule]
fn harness_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let version = unsafe { std::ffi::CStr::from_ptr(rdkafka_sys::rd_kafka_version_str()) };
    m.add("LIBRDKAFKA_VERSION", version.to_string_lossy().into_owned())?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::GroupMetadata>()?;
    m.add_class::<batch::Batch>()?;
    m.add_class::<decode::Decoder>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::Tracker>()?;
    m.add_class::<results::Results>()?;
    m.add_function(wrap_pyfunction!(relay::relay, m)?)?;
    Ok(())
}
