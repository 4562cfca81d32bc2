//! The native relay: consume → produce each record's bytes and headers unchanged → commit behind the
//! acknowledgements (at-least-once, as the loop does), with no decode, no model and no Python. What the Kafka
//! client itself can move on this machine and broker: the physical limit every loop figure is read against.

use std::collections::VecDeque;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rdkafka_sys as rd;

use crate::consumer::{new_handle, poll_into};
use crate::kafka::{self, SendPtr, Tpl};
use crate::producer::{ProducerHandle, TrackerInner};

/// Batches produced and not yet acknowledged, with the offsets to store behind each.
type InFlight = VecDeque<(Arc<TrackerInner>, Vec<(String, i32, i64)>)>;

struct Stats {
    consumed: u64,
    produced: u64,
    delivery_errors: u64,
    batches: u64,
    cpu_s: f64,
    wall_s: f64,
    error: Option<String>,
}

#[pyfunction]
#[pyo3(signature = (consumer_config, producer_config, input_topic, output_topic, records, batch_max=64, batch_wait_s=0.005, idle_s=10.0, max_in_flight=64, timeout_s=300.0))]
#[allow(clippy::too_many_arguments)]
pub fn relay<'py>(
    py: Python<'py>,
    consumer_config: &Bound<'py, PyDict>,
    producer_config: &Bound<'py, PyDict>,
    input_topic: &str,
    output_topic: &str,
    records: u64,
    batch_max: usize,
    batch_wait_s: f64,
    idle_s: f64,
    max_in_flight: usize,
    timeout_s: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let consumer = new_handle(py, consumer_config, None, None)?;
    let producer = Arc::new(ProducerHandle::new(py, producer_config)?);
    let mut sub = Tpl::new(1);
    sub.add(input_topic, -1, rd::RD_KAFKA_OFFSET_INVALID as i64)?;
    kafka::check(py, unsafe { rd::rd_kafka_subscribe(consumer.rk, sub.0) } as i32)?;
    let rkt = producer.topic(output_topic).map_err(|e| e.to_py(py))?;
    let (c, p, t) = (consumer.clone(), producer.clone(), SendPtr(rkt));
    let wait_ms = (batch_wait_s * 1000.0).round() as i32;
    let limits = Limits {
        batch_max,
        wait_ms,
        idle_s,
        max_in_flight,
        timeout_s,
    };
    let stats = py.detach(move || run(&c, &p, t, records, &limits));
    let out = PyDict::new(py);
    out.set_item("consumed", stats.consumed)?;
    out.set_item("produced", stats.produced)?;
    out.set_item("delivery_errors", stats.delivery_errors)?;
    out.set_item("batches", stats.batches)?;
    out.set_item("cpu_s", stats.cpu_s)?;
    out.set_item("wall_s", stats.wall_s)?;
    out.set_item("error", stats.error)?;
    Ok(out)
}

struct Limits {
    batch_max: usize,
    wait_ms: i32,
    idle_s: f64,
    max_in_flight: usize,
    timeout_s: f64,
}

fn run(
    c: &crate::consumer::ConsumerHandle,
    p: &ProducerHandle,
    rkt: SendPtr<rd::rd_kafka_topic_t>,
    records: u64,
    lim: &Limits,
) -> Stats {
    let (batch_max, wait_ms, idle_s, max_in_flight) = (lim.batch_max, lim.wait_ms, lim.idle_s, lim.max_in_flight);
    let started = std::time::Instant::now();
    let mut st = Stats {
        consumed: 0,
        produced: 0,
        delivery_errors: 0,
        batches: 0,
        cpu_s: 0.0,
        wall_s: 0.0,
        error: None,
    };
    let mut inflight: InFlight = VecDeque::new();
    let mut last_record = std::time::Instant::now();
    while st.consumed < records {
        let (msgs, errors) = poll_into(c, batch_max, 100, wait_ms);
        if let Some(e) = errors.iter().find(|e| e.fatal) {
            st.error = Some(format!("{}: {}", kafka::err_name(e.code), e.reason));
            break;
        }
        if msgs.is_empty() {
            if started.elapsed().as_secs_f64() > lim.timeout_s {
                st.error = Some(format!("{} of {records} records in {} s", st.consumed, lim.timeout_s));
                break;
            }
            let assigned = c.shared.first_assign.lock().unwrap().is_some();
            if assigned && last_record.elapsed().as_secs_f64() > idle_s {
                st.error = Some(format!("no record for {idle_s} s after {} of {records}", st.consumed));
                break;
            }
            serve(c, p, &mut inflight, &mut st);
            continue;
        }
        last_record = std::time::Instant::now();
        let tracker = Arc::new(TrackerInner::new());
        let mut offsets: Vec<(String, i32, i64)> = Vec::new();
        for m in &msgs {
            let orig = m.headers();
            let h = if orig.is_null() {
                std::ptr::null_mut()
            } else {
                unsafe { rd::rd_kafka_headers_copy(orig) }
            };
            tracker.add_pending();
            let opaque = Arc::into_raw(tracker.clone()) as *mut std::ffi::c_void;
            loop {
                match p.produce_once(rkt.get(), m.key(), m.value(), h, opaque) {
                    Ok(()) => break,
                    Err(e) if e.code == kafka::ERR_QUEUE_FULL => unsafe {
                        rd::rd_kafka_poll(p.rk, 50);
                    },
                    Err(e) => {
                        st.error = Some(format!("{}: {}", kafka::err_name(e.code), e.reason));
                        return finish(c, p, st, &mut inflight);
                    }
                }
            }
            st.produced += 1;
            let (topic, part, off) = (m.topic_str(), m.partition(), m.offset() + 1);
            match offsets.iter_mut().find(|(t, pp, _)| *pp == part && *t == topic) {
                Some(e) => e.2 = e.2.max(off),
                None => offsets.push((topic, part, off)),
            }
        }
        st.consumed += msgs.len() as u64;
        st.batches += 1;
        drop(msgs);
        inflight.push_back((tracker, offsets));
        serve(c, p, &mut inflight, &mut st);
        while inflight.len() > max_in_flight {
            unsafe { rd::rd_kafka_poll(p.rk, 50) };
            serve(c, p, &mut inflight, &mut st);
        }
    }
    finish(c, p, st, &mut inflight)
}

/// Delivery reports, then the offsets of the acknowledged prefix of batches stored (auto-committed).
fn serve(c: &crate::consumer::ConsumerHandle, p: &ProducerHandle, inflight: &mut InFlight, st: &mut Stats) {
    unsafe { rd::rd_kafka_poll(p.rk, 0) };
    let mut store = Tpl::new(4);
    let mut any = false;
    while let Some((t, _)) = inflight.front() {
        if t.pending_now() > 0 {
            break;
        }
        st.delivery_errors += t.errors_now();
        let (_, offs) = inflight.pop_front().unwrap();
        for (topic, part, off) in offs {
            let _ = store.add(&topic, part, off);
            any = true;
        }
    }
    if any {
        unsafe { rd::rd_kafka_offsets_store(c.rk, store.0) };
    }
}

fn finish(c: &crate::consumer::ConsumerHandle, p: &ProducerHandle, mut st: Stats, inflight: &mut InFlight) -> Stats {
    unsafe { rd::rd_kafka_flush(p.rk, 30_000) };
    serve(c, p, inflight, &mut st);
    unsafe {
        rd::rd_kafka_commit(c.rk, std::ptr::null(), 0);
    }
    let (cpu, wall) = (kafka::process_cpu_s(), kafka::now_ns());
    if let Some((cpu0, wall0)) = *c.shared.first_assign.lock().unwrap() {
        st.cpu_s = cpu - cpu0;
        st.wall_s = (wall - wall0) as f64 / 1e9;
    }
    unsafe { rd::rd_kafka_consumer_close(c.rk) };
    st
}
