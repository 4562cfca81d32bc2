//! Decoding a micro-batch into one float64 matrix, with the rules of harness/scoring/wire.py's FeatureCodec
//! (all-numeric features), so that a record is refused here exactly when the Python codec refuses it:
//!
//!   json   a JSON object {feature name: number or null}; a missing name or null is NaN; an unknown name, a
//!          value of another type (bool, string, list, object) or a document that is not JSON (orjson's
//!          grammar: no NaN/Infinity literals, no trailing commas, a number beyond float64 is an error) is
//!          refused. Duplicate names: the last value counts, reported in the order names first appear.
//!   f64le  n_features little-endian float64; NaN is missing; an infinite value is refused.

use std::collections::HashMap;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::batch::Batch;

#[pyclass(module = "harness_native", frozen)]
pub struct Decoder {
    names: Vec<String>,
    keys: Vec<Vec<u8>>,
    /// names whose JSON string form is their bytes (no quote, backslash or control character)
    plain: Vec<bool>,
    index: HashMap<Vec<u8>, usize>,
    f64le: bool,
}

#[pymethods]
impl Decoder {
    #[new]
    fn new(feature_names: Vec<String>, encoding: &str) -> PyResult<Self> {
        let f64le = match encoding {
            "json" => false,
            "f64le" => true,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown encoding {other:?}; valid: json, f64le"
                )))
            }
        };
        let keys: Vec<Vec<u8>> = feature_names.iter().map(|n| n.as_bytes().to_vec()).collect();
        let index = keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        let plain = keys
            .iter()
            .map(|k| !k.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20))
            .collect();
        Ok(Decoder {
            names: feature_names,
            keys,
            plain,
            index,
            f64le,
        })
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.names.len()
    }

    /// Decode the batch's records into out[0:k] (a writable C-contiguous float64 array of n_features
    /// columns and at least len(batch) rows): returns k and the records refused, [(record index, reason)].
    fn decode(&self, mut batch: PyRefMut<'_, Batch>, out: &Bound<'_, PyAny>) -> PyResult<(usize, Vec<(u32, String)>)> {
        let buf: PyBuffer<f64> = PyBuffer::get(out)?;
        let n = self.names.len();
        let shape = buf.shape();
        if buf.readonly() || !buf.is_c_contiguous() || shape.len() != 2 || shape[1] != n || shape[0] < batch.msgs.len()
        {
            return Err(PyValueError::new_err(format!(
                "decode needs a writable C-contiguous float64 array of at least {} rows and {} columns",
                batch.msgs.len(),
                n
            )));
        }
        let data = unsafe { std::slice::from_raw_parts_mut(buf.buf_ptr() as *mut f64, shape[0] * n) };
        let mut rows = Vec::with_capacity(batch.msgs.len());
        let mut dead = Vec::new();
        for (i, m) in batch.msgs.iter().enumerate() {
            let k = rows.len();
            let row = &mut data[k * n..(k + 1) * n];
            match self.decode_one(m.value(), row) {
                Ok(()) => rows.push(i as u32),
                Err(reason) => dead.push((i as u32, reason)),
            }
        }
        let k = rows.len();
        batch.rows = rows;
        batch.dead = dead.clone();
        Ok((k, dead))
    }

    /// One value into a row (for tests and tools): the row, or ValueError with the reason.
    fn decode_value(&self, value: Option<&[u8]>) -> PyResult<Vec<f64>> {
        let mut row = vec![0.0; self.names.len()];
        self.decode_one(value, &mut row).map_err(PyValueError::new_err)?;
        Ok(row)
    }
}

impl Decoder {
    pub fn decode_one(&self, value: Option<&[u8]>, row: &mut [f64]) -> Result<(), String> {
        let Some(v) = value else {
            return Err("record has no value".into());
        };
        if self.f64le {
            self.decode_f64le(v, row)
        } else {
            self.decode_json(v, row)
        }
    }

    fn decode_f64le(&self, v: &[u8], row: &mut [f64]) -> Result<(), String> {
        let n = self.names.len();
        if v.len() != 8 * n {
            return Err(format!(
                "f64le value has {} bytes, expected {} ({} features)",
                v.len(),
                8 * n,
                n
            ));
        }
        for (j, chunk) in v.chunks_exact(8).enumerate() {
            let x = f64::from_le_bytes(chunk.try_into().unwrap());
            if x.is_infinite() {
                return Err(format!(
                    "feature {} is infinite: use NaN for missing",
                    py_repr(&self.names[j])
                ));
            }
            row[j] = x;
        }
        Ok(())
    }

    fn lookup(&self, key: &[u8], guess: usize) -> Option<usize> {
        // records usually list the features in the model's order: try the next one first
        if guess < self.keys.len() && self.keys[guess] == key {
            return Some(guess);
        }
        self.index.get(key).copied()
    }

    fn decode_json(&self, v: &[u8], row: &mut [f64]) -> Result<(), String> {
        row.fill(f64::NAN);
        if self.decode_json_fast(v, row) {
            return Ok(());
        }
        row.fill(f64::NAN);
        self.decode_json_exact(v, row)
    }

    /// The common case in one pass: an object of known names (no escapes) with numbers or nulls. Anything
    /// else returns false, and the exact pass decides (and words the reason as the Python codec would).
    #[inline]
    fn decode_json_fast(&self, v: &[u8], row: &mut [f64]) -> bool {
        let mut p = Parser { s: v, i: 0 };
        p.ws();
        if p.peek() != Some(b'{') {
            return false;
        }
        p.i += 1;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
            p.ws();
            return p.i == p.s.len();
        }
        let mut guess = 0usize;
        loop {
            if p.peek() != Some(b'"') {
                return false;
            }
            // the expected next name, compared in place (names without quotes, backslashes or control
            // characters only: their bytes are their JSON form); else the name scanned and looked up
            let j = match self.plain.get(guess) {
                Some(&true) if p.expect_key(&self.keys[guess]) => guess,
                _ => {
                    let Some(key) = p.plain_string() else {
                        return false;
                    };
                    let Some(j) = self.lookup(key, guess) else {
                        return false;
                    };
                    j
                }
            };
            guess = j + 1;
            p.ws();
            if p.peek() != Some(b':') {
                return false;
            }
            p.i += 1;
            p.ws();
            match p.peek() {
                Some(b'-' | b'0'..=b'9') => match p.fast_number() {
                    Some(x) => row[j] = x,
                    None => return false,
                },
                Some(b'n') => {
                    if p.literal(b"null").is_err() {
                        return false;
                    }
                    row[j] = f64::NAN;
                }
                _ => return false,
            }
            p.ws();
            match p.peek() {
                Some(b',') => {
                    p.i += 1;
                    p.ws();
                }
                Some(b'}') => {
                    p.i += 1;
                    p.ws();
                    return p.i == p.s.len();
                }
                _ => return false,
            }
        }
    }

    fn decode_json_exact(&self, v: &[u8], row: &mut [f64]) -> Result<(), String> {
        let mut p = Parser { s: v, i: 0 };
        p.ws();
        if p.peek() != Some(b'{') {
            // any other JSON document is valid JSON of the wrong kind; anything else is not JSON
            let kind = p.value_kind().map_err(|e| p.not_json(e))?;
            p.ws();
            if p.i < p.s.len() {
                return Err(p.not_json("unexpected content after document"));
            }
            return Err(format!("value must be a JSON object of features, got {kind}"));
        }
        p.i += 1;
        // the first problem in the order names first appear, as the Python codec reports it (it reads the
        // whole document first: a syntax error anywhere wins)
        let n = self.names.len();
        let mut first_pos = [usize::MAX; 64];
        let mut big_first_pos: Vec<usize> = if n > 64 { vec![usize::MAX; n] } else { Vec::new() };
        let mut bad: Vec<(usize, String)> = Vec::new(); // feature -> repr of its (last) non-numeric value
        let mut unknown: Option<(usize, String)> = None;
        let mut guess = 0usize;
        let mut pos = 0usize;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                p.ws();
                if p.peek() != Some(b'"') {
                    return Err(p.not_json("expected a string key"));
                }
                let key = p.string().map_err(|e| p.not_json(e))?;
                p.ws();
                if p.peek() != Some(b':') {
                    return Err(p.not_json("expected ':'"));
                }
                p.i += 1;
                p.ws();
                let j = self.lookup(&key, guess);
                let value = p.feature_value().map_err(|e| p.not_json(e))?;
                match j {
                    Some(j) => {
                        guess = j + 1;
                        let fp = if n > 64 {
                            &mut big_first_pos[j]
                        } else {
                            &mut first_pos[j]
                        };
                        if *fp == usize::MAX {
                            *fp = pos;
                        }
                        if !bad.is_empty() {
                            bad.retain(|(f, _)| *f != j);
                        }
                        match value {
                            Value::Number(x) => row[j] = x,
                            Value::Null => row[j] = f64::NAN,
                            Value::Other(repr) => bad.push((j, repr)),
                        }
                    }
                    None => {
                        if unknown.is_none() {
                            unknown = Some((pos, String::from_utf8_lossy(&key).into_owned()));
                        }
                    }
                }
                pos += 1;
                p.ws();
                match p.peek() {
                    Some(b',') => {
                        p.i += 1;
                        p.ws();
                        if p.peek() == Some(b'}') {
                            return Err(p.not_json("trailing comma is not allowed"));
                        }
                    }
                    Some(b'}') => {
                        p.i += 1;
                        break;
                    }
                    Some(_) => return Err(p.not_json("expected ',' or '}'")),
                    None => return Err(p.not_json("unexpected end of data")),
                }
            }
        }
        p.ws();
        if p.i < p.s.len() {
            return Err(p.not_json("unexpected content after document"));
        }
        let mut worst: Option<(usize, String)> =
            unknown.map(|(at, k)| (at, format!("unknown feature {}", py_repr(&k))));
        for (j, repr) in bad {
            let at = if n > 64 { big_first_pos[j] } else { first_pos[j] };
            if worst.as_ref().is_none_or(|(w, _)| at < *w) {
                worst = Some((
                    at,
                    format!("feature {} is not a number: {}", py_repr(&self.names[j]), repr),
                ));
            }
        }
        match worst {
            Some((_, reason)) => Err(reason),
            None => Ok(()),
        }
    }
}

enum Value {
    Number(f64),
    Null,
    Other(String),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn not_json(&self, what: &str) -> String {
        format!("value is not JSON: {what} at byte {}", self.i)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), &'static str> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err("invalid literal")
        }
    }

    /// A feature's value: a number, null, or anything else (validated, kept as a short repr for the reason).
    fn feature_value(&mut self) -> Result<Value, &'static str> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            Some(_) => {
                let start = self.i;
                let kind = self.value_kind()?;
                Ok(Value::Other(repr_of(kind, &self.s[start..self.i])))
            }
            None => Err("unexpected end of data"),
        }
    }

    /// Validate any JSON value; its Python type name.
    fn value_kind(&mut self) -> Result<&'static str, &'static str> {
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok("dict");
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err("expected a string key");
                    }
                    self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err("expected ':'");
                    }
                    self.i += 1;
                    self.ws();
                    self.value_kind()?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                            if self.peek() == Some(b'}') {
                                return Err("trailing comma is not allowed");
                            }
                        }
                        Some(b'}') => {
                            self.i += 1;
                            return Ok("dict");
                        }
                        Some(_) => return Err("expected ',' or '}'"),
                        None => return Err("unexpected end of data"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok("list");
                }
                loop {
                    self.ws();
                    self.value_kind()?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                            if self.peek() == Some(b']') {
                                return Err("trailing comma is not allowed");
                            }
                        }
                        Some(b']') => {
                            self.i += 1;
                            return Ok("list");
                        }
                        Some(_) => return Err("expected ',' or ']'"),
                        None => return Err("unexpected end of data"),
                    }
                }
            }
            Some(b'"') => self.string().map(|_| "str"),
            Some(b't') => self.literal(b"true").map(|_| "bool"),
            Some(b'f') => self.literal(b"false").map(|_| "bool"),
            Some(b'n') => self.literal(b"null").map(|_| "NoneType"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.number()?;
                let t = &self.s[start..self.i];
                Ok(if t.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                    "float"
                } else {
                    "int"
                })
            }
            Some(_) => Err("unexpected character"),
            None => Err("unexpected end of data"),
        }
    }

    /// `"key"` at self.i: consumed when the bytes match.
    #[inline]
    fn expect_key(&mut self, key: &[u8]) -> bool {
        let s = self.s;
        let start = self.i + 1;
        let end = start + key.len();
        if end < s.len() && s[end] == b'"' && &s[start..end] == key {
            self.i = end + 1;
            return true;
        }
        false
    }

    /// A string without escapes whose bytes are ASCII or valid UTF-8 (self.i at the opening quote), borrowed;
    /// None for anything else (the exact pass takes over).
    #[inline]
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let s = self.s;
        let start = self.i + 1;
        let rel = memchr_quote_or_backslash(&s[start..])?;
        let end = start + rel;
        if s[end] != b'"' {
            return None;
        }
        let raw = &s[start..end];
        if raw.iter().any(|&c| !(0x20..0x80).contains(&c))
            && (raw.iter().any(|&c| c < 0x20) || std::str::from_utf8(raw).is_err())
        {
            return None;
        }
        self.i = end + 1;
        Some(raw)
    }

    /// A number in one pass: digits into a 64-bit mantissa and a decimal exponent, exact when both fit
    /// (Clinger's fast path: mantissa <= 2^53, |exponent| <= 22: one correctly rounded multiplication or
    /// division), else the slice through fast_float2. None on a malformed or infinite number.
    #[inline]
    fn fast_number(&mut self) -> Option<f64> {
        let s = self.s;
        let start = self.i;
        let mut i = start;
        let neg = s.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let mut mant: u64 = 0;
        let mut nd = 0u32;
        match s.get(i) {
            Some(b'0') => {
                i += 1;
                if let Some(b'0'..=b'9') = s.get(i) {
                    return None;
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&c @ b'0'..=b'9') = s.get(i) {
                    mant = mant.wrapping_mul(10).wrapping_add((c - b'0') as u64);
                    nd += 1;
                    i += 1;
                }
            }
            _ => return None,
        }
        let mut exp10: i32 = 0;
        let mut integer = true;
        if s.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if !matches!(s.get(i), Some(b'0'..=b'9')) {
                return None;
            }
            while let Some(&c @ b'0'..=b'9') = s.get(i) {
                mant = mant.wrapping_mul(10).wrapping_add((c - b'0') as u64);
                nd += 1;
                exp10 -= 1;
                i += 1;
            }
        }
        if let Some(b'e' | b'E') = s.get(i) {
            integer = false;
            i += 1;
            let eneg = match s.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            if !matches!(s.get(i), Some(b'0'..=b'9')) {
                return None;
            }
            let mut e: i32 = 0;
            while let Some(&c @ b'0'..=b'9') = s.get(i) {
                e = e.saturating_mul(10).saturating_add((c - b'0') as i32);
                i += 1;
            }
            exp10 = exp10.saturating_add(if eneg { -e } else { e });
        }
        self.i = i;
        if integer && mant == 0 && nd <= 19 {
            return Some(0.0); // an integer -0 is 0 (a Python int), not -0.0
        }
        if nd <= 19 && mant <= (1u64 << 53) && (-22..=22).contains(&exp10) {
            let m = mant as f64;
            let v = if exp10 < 0 {
                m / POW10[(-exp10) as usize]
            } else {
                m * POW10[exp10 as usize]
            };
            return Some(if neg { -v } else { v });
        }
        let x: f64 = fast_float2::parse(&s[start..i]).ok()?;
        if x.is_infinite() {
            return None;
        }
        if integer && x == 0.0 {
            return Some(0.0);
        }
        Some(x)
    }

    /// A JSON number (strict grammar) as the nearest float64; beyond float64's range is an error (orjson's).
    fn number(&mut self) -> Result<f64, &'static str> {
        let start = self.i;
        let s = self.s;
        let mut i = self.i;
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        match s.get(i) {
            Some(b'0') => {
                i += 1;
                if let Some(b'0'..=b'9') = s.get(i) {
                    return Err("number with leading zero is not allowed");
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = s.get(i) {
                    i += 1;
                }
            }
            Some(_) => return Err("no digit after sign"),
            None => return Err("unexpected end of data"),
        }
        let mut integer = true;
        if s.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if !matches!(s.get(i), Some(b'0'..=b'9')) {
                return Err(if i >= s.len() {
                    "unexpected end of data"
                } else {
                    "no digit after decimal point"
                });
            }
            while let Some(b'0'..=b'9') = s.get(i) {
                i += 1;
            }
        }
        if let Some(b'e' | b'E') = s.get(i) {
            integer = false;
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            if !matches!(s.get(i), Some(b'0'..=b'9')) {
                return Err(if i >= s.len() {
                    "unexpected end of data"
                } else {
                    "no digit in exponent"
                });
            }
            while let Some(b'0'..=b'9') = s.get(i) {
                i += 1;
            }
        }
        self.i = i;
        let x: f64 = fast_float2::parse(&s[start..i]).map_err(|_| "invalid number")?;
        if x.is_infinite() {
            self.i = start;
            return Err("number is infinity when parsed as double");
        }
        if integer && x == 0.0 {
            return Ok(0.0); // an integer -0 is 0 (a Python int), not -0.0
        }
        Ok(x)
    }

    /// A JSON string (self.i at the opening quote), unescaped, validated as UTF-8.
    fn string(&mut self) -> Result<Vec<u8>, &'static str> {
        self.i += 1;
        let s = self.s;
        let start = self.i;
        // fast path: no escapes, ASCII
        let mut i = start;
        let mut ascii = true;
        while i < s.len() {
            let c = s[i];
            if c == b'"' {
                let raw = &s[start..i];
                if !ascii && std::str::from_utf8(raw).is_err() {
                    return Err("str is not valid UTF-8");
                }
                self.i = i + 1;
                return Ok(raw.to_vec());
            }
            if c == b'\\' {
                break;
            }
            if c < 0x20 {
                return Err("control character in string");
            }
            if c >= 0x80 {
                ascii = false;
            }
            i += 1;
        }
        if i >= s.len() {
            return Err("unexpected end of data");
        }
        // slow path: escapes
        let mut out: Vec<u8> = s[start..i].to_vec();
        while i < s.len() {
            let c = s[i];
            match c {
                b'"' => {
                    if std::str::from_utf8(&out).is_err() {
                        return Err("str is not valid UTF-8");
                    }
                    self.i = i + 1;
                    return Ok(out);
                }
                b'\\' => {
                    i += 1;
                    let e = *s.get(i).ok_or("unexpected end of data")?;
                    i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hi = hex4(s, i)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if s.get(i) != Some(&b'\\') || s.get(i + 1) != Some(&b'u') {
                                    return Err("no low surrogate in string");
                                }
                                let lo = hex4(s, i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err("invalid low surrogate in string");
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err("unexpected low surrogate in string");
                            } else {
                                hi
                            };
                            let ch = char::from_u32(cp).ok_or("invalid escape")?;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err("invalid escape"),
                    }
                }
                c if c < 0x20 => return Err("control character in string"),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Err("unexpected end of data")
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

#[inline]
fn memchr_quote_or_backslash(s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b'"' || c == b'\\')
}

fn hex4(s: &[u8], i: usize) -> Result<u32, &'static str> {
    let h = s.get(i..i + 4).ok_or("unexpected end of data")?;
    let t = std::str::from_utf8(h).map_err(|_| "invalid escape")?;
    u32::from_str_radix(t, 16).map_err(|_| "invalid escape")
}

/// A short Python-like repr of a JSON value for a reason line.
fn repr_of(kind: &str, raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let shown = match kind {
        "bool" => {
            if raw == b"true" {
                "True".to_string()
            } else {
                "False".to_string()
            }
        }
        "str" => {
            let mut p = Parser { s: raw, i: 0 };
            match p.string() {
                Ok(v) => py_repr(&String::from_utf8_lossy(&v)),
                Err(_) => text.into_owned(),
            }
        }
        _ => text.into_owned(),
    };
    if shown.chars().count() > 200 {
        let cut: String = shown.chars().take(197).collect();
        return cut + "...";
    }
    shown
}

/// Python's repr of a str (single quotes unless the text holds one and no double quote).
pub fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}
