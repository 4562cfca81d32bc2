//! What the consumer, the producer and the relay share: configuration from a Python dict, librdkafka errors as
//! confluent-kafka's KafkaException (one vocabulary of errors and offsets in the project), topic-partition
//! lists to and from confluent_kafka.TopicPartition, and a pointer that may cross into a GIL-free closure.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use rdkafka_sys as rd;

/// A raw pointer that may be moved into `py.detach` (librdkafka handles are thread-safe).
/// Closures must capture the whole value (call `.get()`), never the field.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}

pub const ERR_NO_ERROR: i32 = 0;
pub const ERR_QUEUE_FULL: i32 = -184;
pub const ERR_INVALID_ARG: i32 = -186;
pub const ERR_ASSIGN_PARTITIONS: i32 = -175;
pub const ERR_FATAL: i32 = -150;

pub fn cstr(s: &str) -> PyResult<CString> {
    CString::new(s).map_err(|_| PyTypeError::new_err(format!("{s:?} holds a NUL byte")))
}

/// A C string from librdkafka as an owned Rust string ("" for NULL).
pub fn from_c(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub fn err_name(code: i32) -> String {
    from_c(unsafe { rd::rd_kafka_err2name(std::mem::transmute::<i32, rd::rd_kafka_resp_err_t>(code)) })
}

pub fn err_str(code: i32) -> String {
    from_c(unsafe { rd::rd_kafka_err2str(std::mem::transmute::<i32, rd::rd_kafka_resp_err_t>(code)) })
}

/// A librdkafka error as data, free of the GIL (raised later as a KafkaException).
#[derive(Debug, Clone)]
pub struct KErr {
    pub code: i32,
    pub reason: String,
    pub fatal: bool,
    pub retriable: bool,
    pub txn_requires_abort: bool,
}

impl KErr {
    pub fn code(code: i32) -> Self {
        KErr {
            code,
            reason: err_str(code),
            fatal: false,
            retriable: false,
            txn_requires_abort: false,
        }
    }

    pub fn new(code: i32, reason: impl Into<String>) -> Self {
        KErr {
            code,
            reason: reason.into(),
            fatal: false,
            retriable: false,
            txn_requires_abort: false,
        }
    }

    /// Takes ownership of an rd_kafka_error_t (destroys it). None for NULL (no error).
    pub fn take(e: *mut rd::rd_kafka_error_t) -> Option<Self> {
        if e.is_null() {
            return None;
        }
        unsafe {
            let out = KErr {
                code: rd::rd_kafka_error_code(e) as i32,
                reason: from_c(rd::rd_kafka_error_string(e)),
                fatal: rd::rd_kafka_error_is_fatal(e) != 0,
                retriable: rd::rd_kafka_error_is_retriable(e) != 0,
                txn_requires_abort: rd::rd_kafka_error_txn_requires_abort(e) != 0,
            };
            rd::rd_kafka_error_destroy(e);
            Some(out)
        }
    }

    pub fn to_py(&self, py: Python<'_>) -> PyErr {
        match kafka_error(py, self) {
            Ok(err) => match exception_class(py).and_then(|c| c.call1((err,))) {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            },
            Err(e) => e,
        }
    }
}

static KAFKA_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static KAFKA_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TOPIC_PARTITION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn ck_attr<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let obj = cell.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("confluent_kafka")?.getattr(name)?.unbind())
    })?;
    Ok(obj.bind(py).clone())
}

fn exception_class(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    ck_attr(py, &KAFKA_EXCEPTION, "KafkaException")
}

/// confluent_kafka.KafkaError(code, reason, fatal=, retriable=, txn_requires_abort=): the codes are librdkafka's in
/// both libraries, so consumer_errors.classify and the guarantees' error handling read them unchanged.
pub fn kafka_error<'py>(py: Python<'py>, e: &KErr) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    kw.set_item("fatal", e.fatal)?;
    kw.set_item("retriable", e.retriable)?;
    kw.set_item("txn_requires_abort", e.txn_requires_abort)?;
    ck_attr(py, &KAFKA_ERROR, "KafkaError")?.call((e.code, e.reason.as_str()), Some(&kw))
}

pub fn raise<T>(py: Python<'_>, e: KErr) -> PyResult<T> {
    Err(e.to_py(py))
}

pub fn check(py: Python<'_>, code: i32) -> PyResult<()> {
    if code == ERR_NO_ERROR {
        Ok(())
    } else {
        raise(py, KErr::code(code))
    }
}

/// A librdkafka configuration from a dict of properties (values as strings; True/False as "true"/"false").
pub fn make_conf(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<*mut rd::rd_kafka_conf_t> {
    let conf = unsafe { rd::rd_kafka_conf_new() };
    for (k, v) in config.iter() {
        let key: String = k.str()?.extract()?;
        let value: String = if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
            if b.is_true() {
                "true".into()
            } else {
                "false".into()
            }
        } else {
            v.str()?.extract()?
        };
        if let Err(e) = conf_set(conf, &key, &value) {
            unsafe { rd::rd_kafka_conf_destroy(conf) };
            return raise(py, KErr::new(ERR_INVALID_ARG, e));
        }
    }
    Ok(conf)
}

pub fn conf_set(conf: *mut rd::rd_kafka_conf_t, key: &str, value: &str) -> Result<(), String> {
    let (k, v) = match (CString::new(key), CString::new(value)) {
        (Ok(k), Ok(v)) => (k, v),
        _ => return Err(format!("configuration property {key:?} holds a NUL byte")),
    };
    let mut errstr = [0 as c_char; 512];
    let res = unsafe { rd::rd_kafka_conf_set(conf, k.as_ptr(), v.as_ptr(), errstr.as_mut_ptr(), errstr.len()) };
    if res as i32 != 0 {
        return Err(from_c(errstr.as_ptr()));
    }
    Ok(())
}

/// rd_kafka_new from a configuration it takes over (also on failure).
pub fn new_client(
    py: Python<'_>,
    kind: rd::rd_kafka_type_t,
    conf: *mut rd::rd_kafka_conf_t,
) -> PyResult<*mut rd::rd_kafka_t> {
    let mut errstr = [0 as c_char; 512];
    let rk = unsafe { rd::rd_kafka_new(kind, conf, errstr.as_mut_ptr(), errstr.len()) };
    if rk.is_null() {
        unsafe { rd::rd_kafka_conf_destroy(conf) };
        return raise(py, KErr::new(ERR_INVALID_ARG, from_c(errstr.as_ptr())));
    }
    Ok(rk)
}

/// An owned rd_kafka_topic_partition_list_t.
pub struct Tpl(pub *mut rd::rd_kafka_topic_partition_list_t);

impl Tpl {
    pub fn new(n: usize) -> Self {
        Tpl(unsafe { rd::rd_kafka_topic_partition_list_new(n as i32) })
    }

    pub fn add(&mut self, topic: &str, partition: i32, offset: i64) -> PyResult<()> {
        let t = cstr(topic)?;
        unsafe {
            let p = rd::rd_kafka_topic_partition_list_add(self.0, t.as_ptr(), partition);
            (*p).offset = offset;
        }
        Ok(())
    }

    pub fn elems(&self) -> &[rd::rd_kafka_topic_partition_t] {
        if self.0.is_null() {
            return &[];
        }
        unsafe {
            let l = &*self.0;
            if l.cnt == 0 || l.elems.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(l.elems, l.cnt as usize)
            }
        }
    }

    /// From a sequence of objects with .topic, .partition, .offset (confluent_kafka.TopicPartition), or a dict
    /// {(topic, partition): offset}.
    pub fn from_py(objs: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(d) = objs.cast::<PyDict>() {
            let mut tpl = Tpl::new(d.len());
            for (k, v) in d.iter() {
                let (topic, partition): (String, i32) = k.extract()?;
                tpl.add(&topic, partition, v.extract()?)?;
            }
            return Ok(tpl);
        }
        let n = objs.len().unwrap_or(0);
        let mut tpl = Tpl::new(n);
        for o in objs.try_iter()? {
            let o = o?;
            let topic: String = o.getattr("topic")?.extract()?;
            let partition: i32 = o.getattr("partition")?.extract()?;
            let offset: i64 = o.getattr("offset")?.extract()?;
            tpl.add(&topic, partition, offset)?;
        }
        Ok(tpl)
    }

    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_to_py(py, self.0)
    }

    pub fn into_raw(mut self) -> *mut rd::rd_kafka_topic_partition_list_t {
        std::mem::replace(&mut self.0, ptr::null_mut())
    }
}

impl Drop for Tpl {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { rd::rd_kafka_topic_partition_list_destroy(self.0) };
        }
    }
}

/// A borrowed list as [confluent_kafka.TopicPartition(topic, partition, offset)].
pub fn list_to_py<'py>(
    py: Python<'py>,
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> PyResult<Bound<'py, PyList>> {
    let cls = ck_attr(py, &TOPIC_PARTITION, "TopicPartition")?;
    let out = PyList::empty(py);
    if list.is_null() {
        return Ok(out);
    }
    let l = unsafe { &*list };
    for i in 0..l.cnt as usize {
        let e = unsafe { &*l.elems.add(i) };
        out.append(cls.call1((from_c(e.topic), e.partition, e.offset))?)?;
    }
    Ok(out)
}

/// A process-CPU reading (user + system seconds, every thread): what the relay and the loop are charged.
pub fn process_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn now_ns() -> i64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}
