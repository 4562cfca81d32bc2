//! The consumer: a librdkafka high-level consumer that hands the loop whole micro-batches (one call, the GIL
//! released while it waits), with the rebalance callbacks, offsets and pause/resume the guarantees need, in
//! the method names and types of confluent_kafka.Consumer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rdkafka_sys as rd;

use crate::batch::{Batch, Msg};
use crate::kafka::{self, check, from_c, make_conf, new_client, raise, KErr, SendPtr, Tpl};

/// What the rebalance callback needs, at a stable address (librdkafka's opaque points here).
pub struct Shared {
    on_assign: Mutex<Option<Py<PyAny>>>,
    on_revoke: Mutex<Option<Py<PyAny>>>,
    me: Mutex<Option<Py<PyAny>>>,
    has_callbacks: AtomicBool,
    in_callback: AtomicBool,
    assigned_in_callback: AtomicUsize,
    pending: Mutex<Option<PyErr>>,
    /// process CPU seconds and wall ns at the first assignment (the relay's and loopcost's starting line)
    pub first_assign: Mutex<Option<(f64, i64)>>,
}

impl Shared {
    fn new(on_assign: Option<Py<PyAny>>, on_revoke: Option<Py<PyAny>>) -> Self {
        let has = on_assign.is_some() || on_revoke.is_some();
        Shared {
            on_assign: Mutex::new(on_assign),
            on_revoke: Mutex::new(on_revoke),
            me: Mutex::new(None),
            has_callbacks: AtomicBool::new(has),
            in_callback: AtomicBool::new(false),
            assigned_in_callback: AtomicUsize::new(0),
            pending: Mutex::new(None),
            first_assign: Mutex::new(None),
        }
    }

    fn clear(&self) {
        self.has_callbacks.store(false, Ordering::SeqCst);
        let taken = (
            self.on_assign.lock().unwrap().take(),
            self.on_revoke.lock().unwrap().take(),
            self.me.lock().unwrap().take(),
        );
        drop(taken); // decref'd now when the GIL is held, else when it next is (pyo3's pool)
    }
}

/// The librdkafka handle; destroyed when the consumer object and every batch it handed out are gone (a batch
/// holds its records' memory, which belongs to this handle).
pub struct ConsumerHandle {
    pub rk: *mut rd::rd_kafka_t,
    pub queue: *mut rd::rd_kafka_queue_t,
    pub shared: Box<Shared>,
}
unsafe impl Send for ConsumerHandle {}
unsafe impl Sync for ConsumerHandle {}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.shared.clear();
        unsafe {
            rd::rd_kafka_queue_destroy(self.queue);
            rd::rd_kafka_destroy(self.rk);
        }
    }
}

unsafe extern "C" fn rebalance_cb(
    rk: *mut rd::rd_kafka_t,
    err: rd::rd_kafka_resp_err_t,
    parts: *mut rd::rd_kafka_topic_partition_list_t,
    opaque: *mut std::ffi::c_void,
) {
    let shared = &*(opaque as *const Shared);
    let code = err as i32;
    if code == kafka::ERR_ASSIGN_PARTITIONS {
        let mut first = shared.first_assign.lock().unwrap();
        if first.is_none() {
            *first = Some((kafka::process_cpu_s(), kafka::now_ns()));
        }
    }
    shared.assigned_in_callback.store(0, Ordering::SeqCst);
    if shared.has_callbacks.load(Ordering::SeqCst) {
        Python::attach(|py| {
            let slot = if code == kafka::ERR_ASSIGN_PARTITIONS {
                &shared.on_assign
            } else {
                &shared.on_revoke
            };
            let cb = slot.lock().unwrap().as_ref().map(|c| c.clone_ref(py));
            let me = shared.me.lock().unwrap().as_ref().map(|c| c.clone_ref(py));
            if let Some(cb) = cb {
                shared.in_callback.store(true, Ordering::SeqCst);
                let res = kafka::list_to_py(py, parts).and_then(|lst| cb.call1(py, (me, lst)).map(|_| ()));
                shared.in_callback.store(false, Ordering::SeqCst);
                if let Err(e) = res {
                    let mut pending = shared.pending.lock().unwrap();
                    if pending.is_none() {
                        *pending = Some(e);
                    }
                }
            }
        });
    }
    if shared.assigned_in_callback.load(Ordering::SeqCst) > 0 {
        return; // the callback assigned itself (e.g. assign then pause during an outage)
    }
    let cooperative = from_c(rd::rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    if code == kafka::ERR_ASSIGN_PARTITIONS {
        if cooperative {
            drop(KErr::take(rd::rd_kafka_incremental_assign(rk, parts)));
        } else {
            rd::rd_kafka_assign(rk, parts);
        }
    } else if cooperative {
        drop(KErr::take(rd::rd_kafka_incremental_unassign(rk, parts)));
    } else {
        rd::rd_kafka_assign(rk, std::ptr::null());
    }
}

pub fn new_handle(
    py: Python<'_>,
    config: &Bound<'_, PyDict>,
    on_assign: Option<Py<PyAny>>,
    on_revoke: Option<Py<PyAny>>,
) -> PyResult<Arc<ConsumerHandle>> {
    let conf = make_conf(py, config)?;
    let shared = Box::new(Shared::new(on_assign, on_revoke));
    unsafe {
        rd::rd_kafka_conf_set_rebalance_cb(conf, Some(rebalance_cb));
        rd::rd_kafka_conf_set_opaque(conf, &*shared as *const Shared as *mut std::ffi::c_void);
    }
    let rk = new_client(py, rd::rd_kafka_type_t::RD_KAFKA_CONSUMER, conf)?;
    unsafe { rd::rd_kafka_poll_set_consumer(rk) };
    let queue = unsafe { rd::rd_kafka_queue_get_consumer(rk) };
    Ok(Arc::new(ConsumerHandle { rk, queue, shared }))
}

/// Up to `max` records: waits up to `timeout_ms` for the first, then up to `wait_ms` for the batch to fill.
/// Records with an error (consumer errors) are returned apart, their messages destroyed.
pub fn poll_into(handle: &ConsumerHandle, max: usize, timeout_ms: i32, wait_ms: i32) -> (Vec<Msg>, Vec<KErr>) {
    let mut buf: Vec<*mut rd::rd_kafka_message_t> = vec![std::ptr::null_mut(); max.max(1)];
    let q = handle.queue;
    let mut n = unsafe { rd::rd_kafka_consume_batch_queue(q, timeout_ms, buf.as_mut_ptr(), 1) };
    if n > 0 && max > 1 {
        let more = unsafe { rd::rd_kafka_consume_batch_queue(q, wait_ms.max(0), buf.as_mut_ptr().add(1), max - 1) };
        if more > 0 {
            n += more;
        }
    }
    let n = n.max(0) as usize;
    let mut msgs = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for &m in &buf[..n] {
        let code = unsafe { (*m).err } as i32;
        if code == 0 {
            msgs.push(Msg(m));
        } else {
            let reason = from_c(unsafe { rd::rd_kafka_message_errstr(m) });
            let mut e = KErr::new(code, reason);
            e.fatal = code == kafka::ERR_FATAL;
            errors.push(e);
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
    (msgs, errors)
}

#[pyclass(module = "harness_native", frozen)]
pub struct Consumer {
    pub handle: Arc<ConsumerHandle>,
    closed: AtomicBool,
    closing: AtomicBool,
}

impl Consumer {
    fn rk(&self) -> PyResult<*mut rd::rd_kafka_t> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PyRuntimeError::new_err("Consumer closed"));
        }
        Ok(self.handle.rk)
    }

    fn raise_pending(&self) -> PyResult<()> {
        if let Some(e) = self.handle.shared.pending.lock().unwrap().take() {
            return Err(e);
        }
        Ok(())
    }
}

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (config, on_assign=None, on_revoke=None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyDict>,
        on_assign: Option<Py<PyAny>>,
        on_revoke: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Ok(Consumer {
            handle: new_handle(py, config, on_assign, on_revoke)?,
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        })
    }

    /// Subscribe to topics; the rebalance callbacks get (this consumer, [TopicPartition]).
    fn subscribe(slf: &Bound<'_, Self>, topics: Vec<String>) -> PyResult<()> {
        let me = slf.get();
        let rk = me.rk()?;
        *me.handle.shared.me.lock().unwrap() = Some(slf.clone().into_any().unbind());
        let mut tpl = Tpl::new(topics.len());
        for t in &topics {
            tpl.add(t, -1, rd::RD_KAFKA_OFFSET_INVALID as i64)?;
        }
        check(slf.py(), unsafe { rd::rd_kafka_subscribe(rk, tpl.0) } as i32)
    }

    /// A micro-batch of up to `max_records` (None when nothing came within `timeout_s`): waits for the first
    /// record up to `timeout_s`, then up to `wait_s` for the batch to fill. Consumer errors come in
    /// `batch.errors()`; an exception raised in a rebalance callback is raised here.
    #[pyo3(signature = (max_records, timeout_s, wait_s))]
    fn poll_batch(&self, py: Python<'_>, max_records: usize, timeout_s: f64, wait_s: f64) -> PyResult<Option<Batch>> {
        self.rk()?;
        let h = SendPtr(Arc::as_ptr(&self.handle) as *mut ConsumerHandle);
        let timeout_ms = (timeout_s * 1000.0).round() as i32;
        let wait_ms = (wait_s * 1000.0).round() as i32;
        let (msgs, errors) = py.detach(move || {
            let handle = unsafe { &*h.get() };
            poll_into(handle, max_records, timeout_ms, wait_ms)
        });
        let batch = Batch::new(self.handle.clone(), msgs, errors);
        self.raise_pending()?;
        if batch.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    fn assign(&self, py: Python<'_>, partitions: &Bound<'_, PyAny>) -> PyResult<()> {
        let rk = self.rk()?;
        let tpl = Tpl::from_py(partitions)?;
        if self.handle.shared.in_callback.load(Ordering::SeqCst) {
            self.handle.shared.assigned_in_callback.fetch_add(1, Ordering::SeqCst);
        }
        check(py, unsafe { rd::rd_kafka_assign(rk, tpl.0) } as i32)
    }

    fn assignment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rk = self.rk()?;
        let mut list: *mut rd::rd_kafka_topic_partition_list_t = std::ptr::null_mut();
        check(py, unsafe { rd::rd_kafka_assignment(rk, &mut list) } as i32)?;
        Tpl(list).to_py(py)
    }

    fn pause(&self, py: Python<'_>, partitions: &Bound<'_, PyAny>) -> PyResult<()> {
        let rk = self.rk()?;
        let tpl = Tpl::from_py(partitions)?;
        check(py, unsafe { rd::rd_kafka_pause_partitions(rk, tpl.0) } as i32)
    }

    fn resume(&self, py: Python<'_>, partitions: &Bound<'_, PyAny>) -> PyResult<()> {
        let rk = self.rk()?;
        let tpl = Tpl::from_py(partitions)?;
        check(py, unsafe { rd::rd_kafka_resume_partitions(rk, tpl.0) } as i32)
    }

    /// The group's committed offsets of `partitions` (a round trip to the coordinator).
    #[pyo3(signature = (partitions, timeout=None))]
    fn committed<'py>(
        &self,
        py: Python<'py>,
        partitions: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let rk = SendPtr(self.rk()?);
        let tpl = SendPtr(Tpl::from_py(partitions)?.into_raw());
        let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
        let code = py.detach(move || unsafe { rd::rd_kafka_committed(rk.get(), tpl.get(), ms) } as i32);
        let tpl = Tpl(tpl.get());
        check(py, code)?;
        tpl.to_py(py)
    }

    fn position<'py>(&self, py: Python<'py>, partitions: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let rk = self.rk()?;
        let tpl = Tpl::from_py(partitions)?;
        check(py, unsafe { rd::rd_kafka_position(rk, tpl.0) } as i32)?;
        tpl.to_py(py)
    }

    /// Send a partition's fetch position to `partition.offset` (the next record fetched is that one).
    fn seek(&self, py: Python<'_>, partition: &Bound<'_, PyAny>) -> PyResult<()> {
        let rk = SendPtr(self.rk()?);
        let tpl = Tpl::from_py(&PyList::new(py, [partition])?.into_any())?;
        let t = SendPtr(tpl.0);
        let err = py.detach(move || KErr::take(unsafe { rd::rd_kafka_seek_partitions(rk.get(), t.get(), 10_000) }));
        if let Some(e) = err {
            return raise(py, e);
        }
        match tpl.elems().first() {
            Some(e) if e.err as i32 != 0 => raise(py, KErr::code(e.err as i32)),
            _ => Ok(()),
        }
    }

    #[pyo3(signature = (message=None, offsets=None))]
    fn store_offsets(
        &self,
        py: Python<'_>,
        message: Option<&Bound<'_, PyAny>>,
        offsets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let rk = self.rk()?;
        if message.is_some() {
            return raise(
                py,
                KErr::new(kafka::ERR_INVALID_ARG, "store_offsets takes offsets= here"),
            );
        }
        let Some(offsets) = offsets else {
            return Ok(());
        };
        let tpl = Tpl::from_py(offsets)?;
        check(py, unsafe { rd::rd_kafka_offsets_store(rk, tpl.0) } as i32)
    }

    /// Commit the stored offsets. Only synchronous commits are offered (the guarantees commit that way).
    #[pyo3(signature = (message=None, offsets=None, asynchronous=true))]
    fn commit(
        &self,
        py: Python<'_>,
        message: Option<&Bound<'_, PyAny>>,
        offsets: Option<&Bound<'_, PyAny>>,
        asynchronous: bool,
    ) -> PyResult<()> {
        let rk = SendPtr(self.rk()?);
        if message.is_some() {
            return raise(py, KErr::new(kafka::ERR_INVALID_ARG, "commit takes offsets= here"));
        }
        let tpl = match offsets {
            Some(o) => SendPtr(Tpl::from_py(o)?.into_raw()),
            None => SendPtr(std::ptr::null_mut()),
        };
        let flag = if asynchronous { 1 } else { 0 };
        let code = py.detach(move || unsafe { rd::rd_kafka_commit(rk.get(), tpl.get(), flag) } as i32);
        if !tpl.0.is_null() {
            drop(Tpl(tpl.0));
        }
        check(py, code)
    }

    /// (low, high) offsets of a partition: from the last fetch with cached=True, else asked of the broker.
    #[pyo3(signature = (partition, timeout=None, cached=false))]
    fn get_watermark_offsets(
        &self,
        py: Python<'_>,
        partition: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        cached: bool,
    ) -> PyResult<(i64, i64)> {
        let rk = SendPtr(self.rk()?);
        let topic = kafka::cstr(&partition.getattr("topic")?.extract::<String>()?)?;
        let part: i32 = partition.getattr("partition")?.extract()?;
        let (mut low, mut high) = (0i64, 0i64);
        let code = if cached {
            unsafe { rd::rd_kafka_get_watermark_offsets(rk.get(), topic.as_ptr(), part, &mut low, &mut high) as i32 }
        } else {
            let ms = timeout.map(|t| (t * 1000.0) as i32).unwrap_or(-1);
            let t = SendPtr(topic.as_ptr() as *mut std::ffi::c_char);
            let (l, h) = (SendPtr(&mut low as *mut i64), SendPtr(&mut high as *mut i64));
            py.detach(move || unsafe {
                rd::rd_kafka_query_watermark_offsets(rk.get(), t.get(), part, l.get(), h.get(), ms) as i32
            })
        };
        check(py, code)?;
        Ok((low, high))
    }

    fn consumer_group_metadata(&self, py: Python<'_>) -> PyResult<GroupMetadata> {
        let rk = self.rk()?;
        let md = unsafe { rd::rd_kafka_consumer_group_metadata(rk) };
        if md.is_null() {
            return raise(py, KErr::new(kafka::ERR_INVALID_ARG, "this consumer has no group"));
        }
        Ok(GroupMetadata(md))
    }

    /// Process CPU seconds and wall-clock ns at the first partition assignment (None before it).
    fn first_assignment(&self) -> Option<(f64, i64)> {
        *self.handle.shared.first_assign.lock().unwrap()
    }

    /// Leave the group (the revoke callback runs) and stop fetching; the handle is destroyed with the last batch.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.load(Ordering::SeqCst) || self.closing.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // the revoke callback runs in here and may still commit: the consumer counts as closed after it
        let rk = SendPtr(self.handle.rk);
        let code = py.detach(move || unsafe { rd::rd_kafka_consumer_close(rk.get()) } as i32);
        self.closed.store(true, Ordering::SeqCst);
        self.handle.shared.clear();
        let pending = self.handle.shared.pending.lock().unwrap().take();
        if let Some(e) = pending {
            return Err(e);
        }
        check(py, code)
    }
}

/// The consumer group's metadata for send_offsets_to_transaction (KIP-447 fencing).
#[pyclass(module = "harness_native", frozen)]
pub struct GroupMetadata(pub *mut rd::rd_kafka_consumer_group_metadata_t);
unsafe impl Send for GroupMetadata {}
unsafe impl Sync for GroupMetadata {}

impl Drop for GroupMetadata {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_consumer_group_metadata_destroy(self.0) };
    }
}
