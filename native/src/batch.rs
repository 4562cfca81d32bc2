//! A micro-batch as the consumer handed it over: librdkafka's own messages (no copy), what decoding made of
//! them (the record index of each matrix row, the records that could not be decoded and why), and the offsets
//! to commit behind them.

use std::collections::HashSet;
use std::ffi::{c_void, CStr};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use rdkafka_sys as rd;

use crate::consumer::ConsumerHandle;
use crate::kafka::{self, KErr};

/// One consumed record (an rd_kafka_message_t owned by its batch).
pub struct Msg(pub *mut rd::rd_kafka_message_t);
unsafe impl Send for Msg {}
unsafe impl Sync for Msg {}

impl Msg {
    #[inline]
    pub fn m(&self) -> &rd::rd_kafka_message_t {
        unsafe { &*self.0 }
    }

    pub fn value(&self) -> Option<&[u8]> {
        let m = self.m();
        if m.payload.is_null() {
            None
        } else {
            Some(unsafe { std::slice::from_raw_parts(m.payload as *const u8, m.len) })
        }
    }

    pub fn key(&self) -> Option<&[u8]> {
        let m = self.m();
        if m.key.is_null() {
            None
        } else {
            Some(unsafe { std::slice::from_raw_parts(m.key as *const u8, m.key_len) })
        }
    }

    pub fn topic(&self) -> &[u8] {
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.m().rkt)) }.to_bytes()
    }

    pub fn topic_str(&self) -> String {
        String::from_utf8_lossy(self.topic()).into_owned()
    }

    pub fn partition(&self) -> i32 {
        self.m().partition
    }

    pub fn offset(&self) -> i64 {
        self.m().offset
    }

    /// The message's headers (owned by the message), or NULL when it has none.
    pub fn headers(&self) -> *mut rd::rd_kafka_headers_t {
        let mut h: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        let err = unsafe { rd::rd_kafka_message_headers(self.0, &mut h) };
        if err as i32 != 0 {
            return std::ptr::null_mut();
        }
        h
    }

    /// Calls `f(name, value)` for each header in order (value None for a NULL header value).
    pub fn for_each_header(&self, mut f: impl FnMut(&[u8], Option<&[u8]>)) {
        let h = self.headers();
        if h.is_null() {
            return;
        }
        let mut i = 0usize;
        loop {
            let mut name: *const std::ffi::c_char = std::ptr::null();
            let mut val: *const c_void = std::ptr::null();
            let mut size: usize = 0;
            let err = unsafe { rd::rd_kafka_header_get_all(h, i, &mut name, &mut val, &mut size) };
            if err as i32 != 0 {
                break;
            }
            let n = unsafe { CStr::from_ptr(name) }.to_bytes();
            let v = if val.is_null() {
                None
            } else {
                Some(unsafe { std::slice::from_raw_parts(val as *const u8, size) })
            };
            f(n, v);
            i += 1;
        }
    }

    /// "<topic>/<partition>/<offset>" (the `src` header).
    pub fn source(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.topic());
        out.push(b'/');
        push_int(out, self.partition() as i64);
        out.push(b'/');
        push_int(out, self.offset());
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { rd::rd_kafka_message_destroy(self.0) };
        }
    }
}

pub fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

/// A micro-batch of records. `len(batch)` is the number of records (consumer errors are apart, in `errors()`).
#[pyclass(module = "harness_native")]
pub struct Batch {
    // field order matters: the messages are destroyed before the handle they belong to
    pub msgs: Vec<Msg>,
    pub errors: Vec<KErr>,
    /// the record index of each decoded matrix row
    pub rows: Vec<u32>,
    /// records that could not be decoded: (record index, reason)
    pub dead: Vec<(u32, String)>,
    pub handle: Arc<ConsumerHandle>,
}

impl Batch {
    pub fn new(handle: Arc<ConsumerHandle>, msgs: Vec<Msg>, errors: Vec<KErr>) -> Self {
        Batch {
            msgs,
            errors,
            rows: Vec::new(),
            dead: Vec::new(),
            handle,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty() && self.errors.is_empty()
    }

    fn offsets<'py>(&self, py: Python<'py>, last: bool) -> PyResult<Bound<'py, PyDict>> {
        // per (topic, partition): records of one partition come in offset order within a batch
        let mut seen: Vec<(*mut rd::rd_kafka_topic_t, i32, i64)> = Vec::new();
        for m in &self.msgs {
            let r = m.m();
            match seen.iter_mut().find(|(t, p, _)| *t == r.rkt && *p == r.partition) {
                Some(e) => {
                    if last {
                        e.2 = e.2.max(r.offset + 1)
                    } else {
                        e.2 = e.2.min(r.offset)
                    }
                }
                None => seen.push((r.rkt, r.partition, if last { r.offset + 1 } else { r.offset })),
            }
        }
        let out = PyDict::new(py);
        for (rkt, p, off) in seen {
            let topic = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(rkt)) }.to_string_lossy();
            out.set_item((topic.as_ref(), p), off)?;
        }
        Ok(out)
    }
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        self.msgs.len()
    }

    /// The consumer errors polled with this batch, as confluent_kafka.KafkaError.
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for e in &self.errors {
            out.append(kafka::kafka_error(py, e)?)?;
        }
        Ok(out)
    }

    /// {(topic, partition): last offset + 1}: what to commit once every record of the batch has its output.
    fn next_offsets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.offsets(py, true)
    }

    /// {(topic, partition): first offset}: where to fetch the batch again from.
    fn first_offsets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.offsets(py, false)
    }

    /// The batch without the records of `partitions` ({(topic, partition)}), or None when nothing is left.
    fn without(&mut self, partitions: HashSet<(String, i32)>) -> Option<Batch> {
        let msgs = std::mem::take(&mut self.msgs);
        let kept: Vec<Msg> = msgs
            .into_iter()
            .filter(|m| !partitions.contains(&(m.topic_str(), m.partition())))
            .collect();
        if kept.is_empty() {
            return None;
        }
        Some(Batch::new(self.handle.clone(), kept, Vec::new()))
    }

    /// The records' values (None for a record without one): for decoders outside this module.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for m in &self.msgs {
            match m.value() {
                Some(v) => out.append(PyBytes::new(py, v))?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// Record what a decoder outside this module made of the batch: the record index of each row, and the
    /// records it could not decode with the reason.
    fn set_decoded(&mut self, rows: Vec<u32>, dead: Vec<(u32, String)>) {
        self.rows = rows;
        self.dead = dead;
    }

    /// The number of decoded rows.
    fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Each decoded row's rid header as sent (the last one with a value), or None.
    fn rids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for &i in &self.rows {
            let mut rid: Option<Bound<'py, PyBytes>> = None;
            self.msgs[i as usize].for_each_header(|n, v| {
                if n == b"rid" {
                    if let Some(v) = v {
                        rid = Some(PyBytes::new(py, v));
                    }
                }
            });
            match rid {
                Some(r) => out.append(r)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// Each decoded row's ids for joining a label: [src] plus its rid when the record has one.
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let mut src = Vec::with_capacity(64);
        for &i in &self.rows {
            let m = &self.msgs[i as usize];
            m.source(&mut src);
            let ids = PyList::empty(py);
            ids.append(String::from_utf8_lossy(&src).as_ref())?;
            let mut rid: Option<Vec<u8>> = None;
            m.for_each_header(|n, v| {
                if n == b"rid" {
                    if let Some(v) = v {
                        rid = Some(v.to_vec());
                    }
                }
            });
            if let Some(r) = rid {
                ids.append(String::from_utf8_lossy(&r).as_ref())?;
            }
            out.append(ids)?;
        }
        Ok(out)
    }
}
