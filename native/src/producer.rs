//! The producer: one call per micro-batch writes every output of the batch — a result per decoded row with
//! its headers (wire.py's `result_headers` order), a dead letter per refused record (the input unchanged plus
//! why, where, and at which stage) — optionally tracked per batch for at-least-once (a Tracker counts the
//! outputs not yet acknowledged), or inside the open transaction for exactly-once.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use rdkafka_sys as rd;

use crate::batch::{push_int, Batch, Msg};
use crate::consumer::GroupMetadata;
use crate::kafka::{self, make_conf, new_client, raise, KErr, SendPtr, Tpl};
use crate::results::Results;

const H_RID: &[u8] = b"rid";
const H_INTENDED: &[u8] = b"t_intended_ns";
const H_SENT: &[u8] = b"t_sent_ns";
static EMPTY: [u8; 1] = [0];

/// Outputs of one micro-batch not yet acknowledged by the broker, and the first failure.
pub struct TrackerInner {
    pending: AtomicI64,
    errors: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl TrackerInner {
    pub fn new() -> Self {
        TrackerInner {
            pending: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            failed: Mutex::new(None),
        }
    }

    pub fn add_pending(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    pub fn pending_now(&self) -> i64 {
        self.pending.load(Ordering::Acquire)
    }

    pub fn errors_now(&self) -> u64 {
        self.errors.load(Ordering::Acquire)
    }
}

#[pyclass(module = "harness_native", frozen)]
pub struct Tracker {
    pub inner: Arc<TrackerInner>,
}

#[pymethods]
impl Tracker {
    #[new]
    fn new() -> Self {
        Tracker {
            inner: Arc::new(TrackerInner::new()),
        }
    }

    /// Outputs sent and not yet acknowledged (or refused).
    #[getter]
    fn pending(&self) -> i64 {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// The first delivery failure, one line, or None.
    #[getter]
    fn failed(&self) -> Option<String> {
        self.inner.failed.lock().unwrap().clone()
    }

    /// Delivery failures since the last call.
    fn take_errors(&self) -> u64 {
        self.inner.errors.swap(0, Ordering::AcqRel)
    }
}

unsafe extern "C" fn delivery_cb(_rk: *mut rd::rd_kafka_t, msg: *const rd::rd_kafka_message_t, _opaque: *mut c_void) {
    let p = (*msg)._private;
    if p.is_null() {
        return;
    }
    let t = Arc::from_raw(p as *const TrackerInner);
    let code = (*msg).err as i32;
    if code != 0 {
        t.errors.fetch_add(1, Ordering::AcqRel);
        let mut f = t.failed.lock().unwrap();
        if f.is_none() {
            *f = Some(kafka::err_str(code));
        }
    }
    t.pending.fetch_sub(1, Ordering::AcqRel);
}

pub struct ProducerHandle {
    pub rk: *mut rd::rd_kafka_t,
    topics: Mutex<HashMap<String, SendPtr<rd::rd_kafka_topic_t>>>,
    /// a thread serving the delivery reports (the trackers are atomics), and its stop flag
    poller: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}
unsafe impl Send for ProducerHandle {}
unsafe impl Sync for ProducerHandle {}

impl Drop for ProducerHandle {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.poller.lock().unwrap().take() {
            stop.store(true, Ordering::Release);
            let _ = thread.join();
        }
        for (_, t) in self.topics.lock().unwrap().drain() {
            unsafe { rd::rd_kafka_topic_destroy(t.get()) };
        }
        unsafe { rd::rd_kafka_destroy(self.rk) };
    }
}

impl ProducerHandle {
    pub fn new(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let conf = make_conf(py, config)?;
        unsafe { rd::rd_kafka_conf_set_dr_msg_cb(conf, Some(delivery_cb)) };
        let rk = new_client(py, rd::rd_kafka_type_t::RD_KAFKA_PRODUCER, conf)?;
        Ok(ProducerHandle {
            rk,
            topics: Mutex::new(HashMap::new()),
            poller: Mutex::new(None),
        })
    }

    /// Serve the delivery reports on a thread of their own ("hn:delivery"), beside the caller's.
    pub fn start_delivery_thread(&self) -> std::io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let (rk, flag) = (SendPtr(self.rk), stop.clone());
        let thread = std::thread::Builder::new().name("hn:delivery".into()).spawn(move || {
            while !flag.load(Ordering::Acquire) {
                unsafe { rd::rd_kafka_poll(rk.get(), 100) };
            }
        })?;
        *self.poller.lock().unwrap() = Some((stop, thread));
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Result<*mut rd::rd_kafka_topic_t, KErr> {
        let mut topics = self.topics.lock().unwrap();
        if let Some(t) = topics.get(name) {
            return Ok(t.get());
        }
        let c = CString::new(name).map_err(|_| KErr::new(kafka::ERR_INVALID_ARG, "topic name holds a NUL byte"))?;
        let t = unsafe { rd::rd_kafka_topic_new(self.rk, c.as_ptr(), std::ptr::null_mut()) };
        if t.is_null() {
            return Err(KErr::code(unsafe { rd::rd_kafka_last_error() } as i32));
        }
        topics.insert(name.to_string(), SendPtr(t));
        Ok(t)
    }

    /// produceva once; Err(code) as librdkafka answered (the headers stay the caller's on failure).
    pub fn produce_once(
        &self,
        rkt: *mut rd::rd_kafka_topic_t,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: *mut rd::rd_kafka_headers_t,
        opaque: *mut c_void,
    ) -> Result<(), KErr> {
        use rd::rd_kafka_vtype_t::*;
        let mem = |b: Option<&[u8]>| match b {
            None => rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: std::ptr::null_mut(),
                size: 0,
            },
            Some([]) => rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: EMPTY.as_ptr() as *mut c_void,
                size: 0,
            },
            Some(b) => rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: b.as_ptr() as *mut c_void,
                size: b.len(),
            },
        };
        let mut vus: [rd::rd_kafka_vu_t; 6] = unsafe { std::mem::zeroed() };
        vus[0].vtype = RD_KAFKA_VTYPE_RKT;
        vus[0].u.rkt = rkt;
        vus[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
        vus[1].u.i = rd::RD_KAFKA_MSG_F_COPY;
        vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
        vus[2].u.mem = mem(value);
        vus[3].vtype = RD_KAFKA_VTYPE_KEY;
        vus[3].u.mem = mem(key);
        vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
        vus[4].u.ptr = opaque;
        let mut n = 5;
        if !headers.is_null() {
            vus[5].vtype = RD_KAFKA_VTYPE_HEADERS;
            vus[5].u.headers = headers;
            n = 6;
        }
        match KErr::take(unsafe { rd::rd_kafka_produceva(self.rk, vus.as_ptr(), n) }) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

fn add_header(h: *mut rd::rd_kafka_headers_t, name: &[u8], value: Option<&[u8]>) {
    let (ptr, len) = match value {
        Some(v) => (v.as_ptr() as *const c_void, v.len() as isize),
        None => (std::ptr::null(), 0),
    };
    unsafe {
        rd::rd_kafka_header_add(
            h,
            name.as_ptr() as *const std::ffi::c_char,
            name.len() as isize,
            ptr,
            len,
        )
    };
}

/// wire.one_line: whitespace runs as one space, at most `limit` characters ("..." when cut).
pub fn one_line(text: &str, limit: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= limit {
        return flat;
    }
    flat.chars().take(limit - 3).collect::<String>() + "..."
}

fn digits(v: &[u8]) -> Option<i64> {
    if v.is_empty() || !v.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[pyclass(module = "harness_native", frozen)]
pub struct Producer {
    h: Arc<ProducerHandle>,
}

impl Producer {
    /// Produce, waiting (GIL released) while the local queue is full; `block=false` drops the record instead.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        rkt: *mut rd::rd_kafka_topic_t,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: *mut rd::rd_kafka_headers_t,
        tracker: Option<&Arc<TrackerInner>>,
        block: bool,
    ) -> Result<bool, KErr> {
        let opaque = match tracker {
            Some(t) => {
                t.pending.fetch_add(1, Ordering::AcqRel);
                Arc::into_raw(t.clone()) as *mut c_void
            }
            None => std::ptr::null_mut(),
        };
        loop {
            match self.h.produce_once(rkt, key, value, headers, opaque) {
                Ok(()) => return Ok(true),
                Err(e) => {
                    if e.code == kafka::ERR_QUEUE_FULL && block {
                        let rk = SendPtr(self.h.rk);
                        py.detach(move || unsafe { rd::rd_kafka_poll(rk.get(), 50) });
                        continue;
                    }
                    if !headers.is_null() {
                        unsafe { rd::rd_kafka_headers_destroy(headers) };
                    }
                    if let Some(t) = tracker {
                        unsafe { drop(Arc::from_raw(opaque as *const TrackerInner)) };
                        t.pending.fetch_sub(1, Ordering::AcqRel);
                    }
                    if e.code == kafka::ERR_QUEUE_FULL {
                        return Ok(false);
                    }
                    return Err(e);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        py: Python<'_>,
        rkt: *mut rd::rd_kafka_topic_t,
        m: &Msg,
        stage: &[u8],
        reason: &str,
        tracker: Option<&Arc<TrackerInner>>,
        src: &mut Vec<u8>,
    ) -> Result<(), KErr> {
        let orig = m.headers();
        let h = if orig.is_null() {
            unsafe { rd::rd_kafka_headers_new(4) }
        } else {
            unsafe { rd::rd_kafka_headers_copy(orig) }
        };
        m.source(src);
        add_header(h, b"dlq_reason", Some(one_line(reason, 500).as_bytes()));
        add_header(h, b"dlq_stage", Some(stage));
        add_header(h, b"dlq_source", Some(src));
        add_header(h, b"src", Some(src));
        self.send(py, rkt, m.key(), m.value(), h, tracker, true).map(|_| ())
    }
}

/// The scores of `rows` decoded rows, `width` numbers each: (rows,) or (rows, width) float64, C-contiguous.
fn scores_of(buf: &PyBuffer<f64>, rows: usize, width: usize) -> PyResult<&[f64]> {
    if rows == 0 {
        return Ok(&[]);
    }
    let shape = buf.shape();
    let fits = (width == 1 && shape == [rows]) || shape == [rows, width];
    if !fits || !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "scores must be a contiguous float64 array of {rows} rows of {width} values, got shape {shape:?}"
        )));
    }
    Ok(unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const f64, rows * width) })
}

/// Where each row's value comes from: the native encoder over the scores, or values encoded by the caller
/// (wire.ResultCodec in Python, for a task or encoding the native encoder does not know).
enum Values<'a, 'py> {
    Native(&'a Results, &'a [f64]),
    Given(Vec<Option<Bound<'py, PyBytes>>>),
}

impl<'a, 'py> Values<'a, 'py> {
    fn new(
        results: Option<&'a Results>,
        buf: &'a Option<PyBuffer<f64>>,
        values: Option<&Bound<'py, PyList>>,
        rows: usize,
    ) -> PyResult<Self> {
        match (results, buf, values) {
            (Some(r), Some(b), None) => Ok(Values::Native(r, scores_of(b, rows, r.width())?)),
            (None, _, Some(v)) => {
                if v.len() != rows {
                    return Err(PyValueError::new_err(format!("{} values for {rows} rows", v.len())));
                }
                Ok(Values::Given(v.iter().map(|x| x.extract().ok()).collect()))
            }
            _ => Err(PyValueError::new_err("give either results (with scores) or values")),
        }
    }

    /// The first row that neither failed nor has a value (given values only): checked before anything is sent.
    fn missing(&self, failed: &[(usize, String)]) -> Option<usize> {
        let Values::Given(v) = self else { return None };
        let mut fi = 0usize;
        for (k, x) in v.iter().enumerate() {
            if fi < failed.len() && failed[fi].0 == k {
                fi += 1;
            } else if x.is_none() {
                return Some(k);
            }
        }
        None
    }

    /// Row k's value into `out`; false when there is none (a value not given for it).
    fn write(&self, out: &mut Vec<u8>, k: usize, rid: Option<&[u8]>) -> bool {
        match self {
            Values::Native(r, scores) => {
                let w = r.width();
                r.encode_into(out, rid, &scores[k * w..(k + 1) * w]);
                true
            }
            Values::Given(v) => match &v[k] {
                Some(b) => {
                    out.clear();
                    out.extend_from_slice(b.as_bytes());
                    true
                }
                None => false,
            },
        }
    }
}

fn scores_buffer(scores: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PyBuffer<f64>>> {
    scores.map(PyBuffer::get).transpose()
}

#[pymethods]
impl Producer {
    /// `delivery_thread`: serve delivery reports on a thread of the producer's own (poll() then only waits);
    /// the loop's outputs use one, so that work runs beside the loop's thread instead of in it.
    #[new]
    #[pyo3(signature = (config, delivery_thread=false))]
    fn new(py: Python<'_>, config: &Bound<'_, PyDict>, delivery_thread: bool) -> PyResult<Self> {
        let h = ProducerHandle::new(py, config)?;
        if delivery_thread {
            h.start_delivery_thread()
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot start the delivery thread: {e}")))?;
        }
        Ok(Producer { h: Arc::new(h) })
    }

    /// Every output of a micro-batch: for each decoded row a result on `topic` (its value, unless the row is in
    /// `failures` {row: reason}, which makes it a dead letter at stage "score"), then a dead letter on
    /// `dlq_topic` for each record the decoder refused (stage "decode") and each failed row. A result's value:
    /// `results` encodes row k of `scores` ((n,) or (n, k) float64), or `values[k]` is it (bytes encoded by the
    /// caller; None for a failed row). Result headers: the input's rid, t_intended_ns, t_sent_ns (those it has),
    /// src, t_consumed_ns, t_scored_ns, scorer, model. With `tracker`, each output counts as pending until the
    /// broker acknowledges it. Returns the end-to-end seconds of the results that carry t_intended_ns when
    /// `latencies`, else None.
    #[pyo3(signature = (batch, scores, failures, topic, dlq_topic, results, scorer, model, consumed_ns, scored_ns, tracker=None, latencies=false, values=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        py: Python<'_>,
        batch: PyRef<'_, Batch>,
        scores: Option<&Bound<'_, PyAny>>,
        failures: Option<&Bound<'_, PyDict>>,
        topic: &str,
        dlq_topic: &str,
        results: Option<PyRef<'_, Results>>,
        scorer: &[u8],
        model: &[u8],
        consumed_ns: i64,
        scored_ns: i64,
        tracker: Option<PyRef<'_, Tracker>>,
        latencies: bool,
        values: Option<&Bound<'_, PyList>>,
    ) -> PyResult<Option<Vec<f64>>> {
        let rows = &batch.rows;
        let buf = scores_buffer(scores)?;
        let values = Values::new(results.as_deref(), &buf, values, rows.len())?;
        let mut failed: Vec<(usize, String)> = Vec::new();
        if let Some(f) = failures {
            for (k, v) in f.iter() {
                let k: usize = k.extract()?;
                if k >= rows.len() {
                    return Err(PyValueError::new_err(format!("failure for row {k} of {}", rows.len())));
                }
                failed.push((k, v.str()?.extract()?));
            }
            failed.sort_by_key(|(k, _)| *k);
        }
        if let Some(k) = values.missing(&failed) {
            return Err(PyValueError::new_err(format!("no value for row {k}, which did not fail")));
        }
        let tracker = tracker.as_ref().map(|t| &t.inner);
        let rkt = self.h.topic(topic).map_err(|e| e.to_py(py))?;
        let mut consumed = Vec::with_capacity(20);
        push_int(&mut consumed, consumed_ns);
        let mut scored = Vec::with_capacity(20);
        push_int(&mut scored, scored_ns);
        let mut lat = if latencies {
            Some(Vec::with_capacity(rows.len()))
        } else {
            None
        };
        let mut src = Vec::with_capacity(64);
        let mut value = Vec::with_capacity(64);
        let mut fi = 0usize;
        for (k, &i) in rows.iter().enumerate() {
            if fi < failed.len() && failed[fi].0 == k {
                fi += 1;
                continue;
            }
            let m = &batch.msgs[i as usize];
            let h = unsafe { rd::rd_kafka_headers_new(8) };
            let (mut rid, mut intended): (Option<&[u8]>, Option<&[u8]>) = (None, None);
            m.for_each_header(|name, v| {
                let Some(v) = v else { return };
                if name == H_RID {
                    rid = Some(unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) });
                } else if name == H_INTENDED {
                    intended = Some(unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) });
                } else if name != H_SENT {
                    return;
                }
                add_header(h, name, Some(v));
            });
            if !values.write(&mut value, k, rid) {
                unsafe { rd::rd_kafka_headers_destroy(h) };
                return Err(PyValueError::new_err(format!("no value for row {k}, which did not fail")));
            }
            m.source(&mut src);
            add_header(h, b"src", Some(&src));
            add_header(h, b"t_consumed_ns", Some(&consumed));
            add_header(h, b"t_scored_ns", Some(&scored));
            add_header(h, b"scorer", Some(scorer));
            add_header(h, b"model", Some(model));
            if let (Some(l), Some(t)) = (lat.as_mut(), intended.and_then(digits)) {
                l.push(((scored_ns - t) as f64 / 1e9).max(0.0));
            }
            self.send(py, rkt, m.key(), Some(&value), h, tracker, true)
                .map_err(|e| e.to_py(py))?;
        }
        if !batch.dead.is_empty() || !failed.is_empty() {
            let dlq = self.h.topic(dlq_topic).map_err(|e| e.to_py(py))?;
            for (i, reason) in &batch.dead {
                self.dead_letter(py, dlq, &batch.msgs[*i as usize], b"decode", reason, tracker, &mut src)
                    .map_err(|e| e.to_py(py))?;
            }
            for (k, reason) in &failed {
                let i = rows[*k] as usize;
                self.dead_letter(py, dlq, &batch.msgs[i], b"score", reason, tracker, &mut src)
                    .map_err(|e| e.to_py(py))?;
            }
        }
        Ok(lat)
    }

    /// The shadow model's values of the batch's decoded rows to `topic` (rid, t_intended_ns, t_sent_ns when
    /// the input has them, src, model): `results` encodes `scores`, or `values` are given (as for `emit`). Best
    /// effort: a record is dropped when the local queue is full. Returns the records sent.
    #[pyo3(signature = (batch, scores, topic, model, results, values=None))]
    fn emit_shadow(
        &self,
        py: Python<'_>,
        batch: PyRef<'_, Batch>,
        scores: Option<&Bound<'_, PyAny>>,
        topic: &str,
        model: &[u8],
        results: Option<PyRef<'_, Results>>,
        values: Option<&Bound<'_, PyList>>,
    ) -> PyResult<usize> {
        let rows = &batch.rows;
        let buf = scores_buffer(scores)?;
        let values = Values::new(results.as_deref(), &buf, values, rows.len())?;
        let rkt = self.h.topic(topic).map_err(|e| e.to_py(py))?;
        let (mut src, mut value) = (Vec::with_capacity(64), Vec::with_capacity(64));
        let mut sent = 0;
        for (k, &i) in rows.iter().enumerate() {
            let m = &batch.msgs[i as usize];
            let mut copied: [Option<Vec<u8>>; 3] = [None, None, None];
            m.for_each_header(|name, v| {
                if let Some(v) = v {
                    let slot = if name == H_RID {
                        0
                    } else if name == H_INTENDED {
                        1
                    } else if name == H_SENT {
                        2
                    } else {
                        return;
                    };
                    copied[slot] = Some(v.to_vec());
                }
            });
            if !values.write(&mut value, k, copied[0].as_deref()) {
                continue;
            }
            let h = unsafe { rd::rd_kafka_headers_new(5) };
            for (name, v) in [H_RID, H_INTENDED, H_SENT].iter().zip(copied.iter()) {
                if let Some(v) = v {
                    add_header(h, name, Some(v));
                }
            }
            m.source(&mut src);
            add_header(h, b"src", Some(&src));
            add_header(h, b"model", Some(model));
            if self
                .send(py, rkt, m.key(), Some(&value), h, None, false)
                .unwrap_or(false)
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Serve delivery reports; waits up to `timeout` seconds for one (GIL released).
    #[pyo3(signature = (timeout=None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> i32 {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let rk = SendPtr(self.h.rk);
        if ms == 0 {
            return unsafe { rd::rd_kafka_poll(rk.get(), 0) };
        }
        py.detach(move || unsafe { rd::rd_kafka_poll(rk.get(), ms) })
    }

    /// Wait until every output is acknowledged or `timeout` seconds passed; the number still in the queue.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> i32 {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let rk = SendPtr(self.h.rk);
        py.detach(move || unsafe {
            rd::rd_kafka_flush(rk.get(), ms);
            rd::rd_kafka_outq_len(rk.get())
        })
    }

    fn __len__(&self) -> usize {
        unsafe { rd::rd_kafka_outq_len(self.h.rk) }.max(0) as usize
    }

    #[pyo3(signature = (timeout=None))]
    fn init_transactions(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let rk = SendPtr(self.h.rk);
        match py.detach(move || KErr::take(unsafe { rd::rd_kafka_init_transactions(rk.get(), ms) })) {
            None => Ok(()),
            Some(e) => raise(py, e),
        }
    }

    fn begin_transaction(&self, py: Python<'_>) -> PyResult<()> {
        match KErr::take(unsafe { rd::rd_kafka_begin_transaction(self.h.rk) }) {
            None => Ok(()),
            Some(e) => raise(py, e),
        }
    }

    #[pyo3(signature = (positions, group_metadata, timeout=None))]
    fn send_offsets_to_transaction(
        &self,
        py: Python<'_>,
        positions: &Bound<'_, PyAny>,
        group_metadata: PyRef<'_, GroupMetadata>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let tpl = Tpl::from_py(positions)?;
        let (rk, t, md) = (SendPtr(self.h.rk), SendPtr(tpl.0), SendPtr(group_metadata.0));
        match py.detach(move || {
            KErr::take(unsafe { rd::rd_kafka_send_offsets_to_transaction(rk.get(), t.get(), md.get(), ms) })
        }) {
            None => Ok(()),
            Some(e) => raise(py, e),
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn commit_transaction(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let rk = SendPtr(self.h.rk);
        match py.detach(move || KErr::take(unsafe { rd::rd_kafka_commit_transaction(rk.get(), ms) })) {
            None => Ok(()),
            Some(e) => raise(py, e),
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn abort_transaction(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let rk = SendPtr(self.h.rk);
        match py.detach(move || KErr::take(unsafe { rd::rd_kafka_abort_transaction(rk.get(), ms) })) {
            None => Ok(()),
            Some(e) => raise(py, e),
        }
    }
}
