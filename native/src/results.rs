//! A result's value, by task and encoding: the same bytes as wire.ResultCodec (harness/scoring/wire.py) writes.
//!
//!     one number per row (binary: P(class 1); regression: the predicted value)
//!         json   {"rid":"<rid>","score":<number>}      ({"score":<number>} without a rid)
//!         f64le  one float64, little-endian
//!     k class probabilities per row (multiclass, classes in the manifest's order)
//!         json   {"rid":"<rid>","class":"<the most probable class>","probabilities":{"<class>":<p>,...}}
//!         f64le  k float64, little-endian
//!
//! JSON is written as orjson writes it: no spaces, numbers in their shortest round-trip digits (ryu) with
//! orjson's exponent form ("1e+16", "1e-7"), a non-finite number as null, strings escaped as orjson escapes them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// What a row's value is encoded into; built once per loop (and per model version).
#[pyclass(module = "harness_native", frozen)]
pub struct Results {
    json: bool,
    /// multiclass: each class's JSON string (quotes included), in output order; empty for one number per row
    classes: Vec<Vec<u8>>,
}

impl Results {
    /// Values per row: k for class probabilities, else 1.
    pub fn width(&self) -> usize {
        self.classes.len().max(1)
    }

    /// The value of one row (`row`: `width()` numbers) into `out` (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>, rid: Option<&[u8]>, row: &[f64]) {
        out.clear();
        if !self.json {
            for v in row {
                out.extend_from_slice(&v.to_le_bytes());
            }
            return;
        }
        out.push(b'{');
        if let Some(r) = rid {
            out.extend_from_slice(b"\"rid\":");
            json_bytes_string(out, r);
            out.push(b',');
        }
        if self.classes.is_empty() {
            out.extend_from_slice(b"\"score\":");
            json_number(out, row[0]);
        } else {
            // the first of equal ones, as Python's max over (p, -j): a later class wins only when strictly greater
            let mut best = 0;
            for j in 1..row.len() {
                if row[j] > row[best] {
                    best = j;
                }
            }
            out.extend_from_slice(b"\"class\":");
            out.extend_from_slice(&self.classes[best]);
            out.extend_from_slice(b",\"probabilities\":{");
            for (j, (name, p)) in self.classes.iter().zip(row).enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(name);
                out.push(b':');
                json_number(out, *p);
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
}

#[pymethods]
impl Results {
    /// `encoding`: "json" or "f64le"; `classes`: a multiclass model's class labels in output order (rows of k
    /// probabilities), None for one number per row (binary, regression). ValueError for any other encoding.
    #[new]
    #[pyo3(signature = (encoding, classes=None))]
    fn new(encoding: &str, classes: Option<Vec<String>>) -> PyResult<Self> {
        let json = match encoding {
            "json" => true,
            "f64le" => false,
            other => {
                return Err(PyValueError::new_err(format!(
                    "no native encoding of results as {other:?} (json, f64le)"
                )))
            }
        };
        let classes = classes.unwrap_or_default();
        if classes.len() == 1 {
            return Err(PyValueError::new_err("class probabilities need at least two classes"));
        }
        let classes = classes
            .iter()
            .map(|c| {
                let mut s = Vec::with_capacity(c.len() + 2);
                json_string(&mut s, c);
                s
            })
            .collect();
        Ok(Results { json, classes })
    }

    /// Numbers per row: k (class probabilities) or 1.
    #[getter(width)]
    fn py_width(&self) -> usize {
        self.width()
    }

    /// One row's value (`row`: its `width` numbers; a rid as the input header's bytes): what the loop writes.
    #[pyo3(signature = (rid, row))]
    fn encode<'py>(&self, py: Python<'py>, rid: Option<&[u8]>, row: Vec<f64>) -> PyResult<Bound<'py, PyBytes>> {
        if row.len() != self.width() {
            return Err(PyValueError::new_err(format!(
                "a row of {} values, expected {}",
                row.len(),
                self.width()
            )));
        }
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out, rid, &row);
        Ok(PyBytes::new(py, &out))
    }
}

/// A float as orjson writes it: shortest round-trip digits (ryu's), "e+" before a positive exponent, null when
/// not finite.
pub fn json_number(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut b = ryu::Buffer::new();
    let s = b.format_finite(v).as_bytes();
    match s.iter().position(|&c| c == b'e') {
        Some(e) if s.get(e + 1) != Some(&b'-') => {
            out.extend_from_slice(&s[..=e]);
            out.push(b'+');
            out.extend_from_slice(&s[e + 1..]);
        }
        _ => out.extend_from_slice(s),
    }
}

/// Bytes as a JSON string, as Python's `.decode("utf-8", "replace")` then orjson would write them.
pub fn json_bytes_string(out: &mut Vec<u8>, r: &[u8]) {
    if r.iter().all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\') {
        out.push(b'"');
        out.extend_from_slice(r);
        out.push(b'"');
    } else {
        json_string(out, &String::from_utf8_lossy(r));
    }
}

/// A JSON string as orjson escapes it: '"', '\\', and the control characters below 0x20 (\b \t \n \f \r or
/// \u00XX); everything else as its UTF-8 bytes.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b if b < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}
