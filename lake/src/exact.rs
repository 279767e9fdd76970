//! Numbers exactly as sent: the JSON text of a number (or a string holding one) becomes a value of
//! its column's type, or the reason it does not fit. Nothing is rounded, clamped or truncated: a
//! fraction into an integer column, a value out of the type's range, more decimal places than a
//! decimal's scale, or a float that is not finite is refused, and the record becomes a dead letter.
//!
//! Integers and decimals are read as decimal digits and an exponent, so `1e3` into an `int64` is
//! 1000 and `1.50` into a `decimal(18, 1)` is 1.5, exactly. Floats are read with Rust's correctly
//! rounded parser: a `float64` column is declared approximate, but it never holds an infinity.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::DataType;

/// A number as decimal digits: `digits × 10^exponent`, without leading or trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Digits {
    negative: bool,
    /// Significant digits, most significant first; empty for zero.
    digits: Vec<u8>,
    exponent: i64,
}

/// Exponents beyond this are out of range for every column type.
const MAX_EXPONENT: i64 = 10_000;

impl Digits {
    /// Reads a JSON number (`-12.50e3`), or the same in a string (a leading `+` allowed).
    fn parse(text: &str) -> Option<Digits> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                at = 1;
                true
            }
            Some(b'+') => {
                at = 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut exponent: i64 = 0;
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            digits.push(bytes[at] - b'0');
            at += 1;
        }
        let mut any = at > start;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let fraction = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                digits.push(bytes[at] - b'0');
                exponent -= 1;
                at += 1;
            }
            any |= at > fraction;
        }
        if !any {
            return None;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            let sign = match bytes.get(at) {
                Some(b'-') => {
                    at += 1;
                    -1
                }
                Some(b'+') => {
                    at += 1;
                    1
                }
                _ => 1,
            };
            let first = at;
            let mut value: i64 = 0;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                value = (value * 10 + i64::from(bytes[at] - b'0')).min(10 * MAX_EXPONENT);
                at += 1;
            }
            if at == first {
                return None;
            }
            exponent += sign * value;
        }
        if at != bytes.len() {
            return None;
        }
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            exponent = 0;
        }
        Some(Digits { negative, digits, exponent })
    }

    /// The value × 10^`shift` as an integer, when it is one and fits an i128 of at most `max_digits`
    /// digits.
    fn scaled(&self, shift: i64, max_digits: usize) -> Result<i128, &'static str> {
        let exponent = self.exponent + shift;
        if exponent < 0 {
            return Err("has more decimal places than the column keeps");
        }
        if exponent > MAX_EXPONENT || self.digits.len() as i64 + exponent > max_digits as i64 {
            return Err("is out of the column's range");
        }
        let mut value: i128 = 0;
        for d in self.digits.iter().copied().chain(std::iter::repeat_n(0, exponent as usize)) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(d)))
                .ok_or("is out of the column's range")?;
        }
        Ok(if self.negative { -value } else { value })
    }
}

/// `text` as a value of an integer column of `bits` bits.
pub(crate) fn integer(text: &str, bits: u32) -> Result<i64, String> {
    let digits = Digits::parse(text).ok_or("is not a number")?;
    let value = digits.scaled(0, 20).map_err(|e| match e {
        "has more decimal places than the column keeps" => "has a fraction".to_string(),
        other => other.to_string(),
    })?;
    let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    if value < min || value > max {
        return Err(format!("is out of the range of int{bits}"));
    }
    Ok(value as i64)
}

/// `text` as the unscaled value of a `decimal(precision, scale)`.
pub(crate) fn decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let digits = Digits::parse(text).ok_or("is not a number")?;
    digits.scaled(i64::from(scale), usize::from(precision)).map_err(|e| match e {
        "has more decimal places than the column keeps" => format!("has more than {scale} decimal places"),
        _ => format!("has more than {precision} digits"),
    })
}

/// `text` as a finite float.
pub(crate) fn float(text: &str) -> Result<f64, String> {
    Digits::parse(text).ok_or("is not a number")?;
    let value: f64 = text.parse().map_err(|_| "is not a number".to_string())?;
    if !value.is_finite() {
        return Err("is too large for a float64".into());
    }
    Ok(value)
}

/// `text` as a finite `float32`.
pub(crate) fn float32(text: &str) -> Result<f32, String> {
    float(text)?;
    let value: f32 = text.parse().map_err(|_| "is not a number".to_string())?;
    value.is_finite().then_some(value).ok_or_else(|| "is too large for a float32".to_string())
}

/// The type a column of `kind` is decoded as before it is made exact: numbers as their text.
pub(crate) fn decoded_as(kind: &DataType) -> DataType {
    match kind {
        DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DataType::Utf8
        }
        other => other.clone(),
    }
}

/// `column` (decoded as [`decoded_as`] says) as a column of type `kind`; the first value that does
/// not fit exactly is the error, with its row.
pub(crate) fn convert(column: &ArrayRef, kind: &DataType) -> Result<ArrayRef, (usize, String)> {
    if decoded_as(kind) == *kind {
        return Ok(column.clone());
    }
    let texts = column.as_any().downcast_ref::<StringArray>().expect("numbers are decoded as text");
    // One pass: each text read once, the first that does not fit ends it.
    fn each<T>(
        texts: &StringArray,
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<Option<T>>, (usize, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(row, text)| text.map(|t| read(t).map_err(|reason| (row, format!("`{t}` {reason}")))).transpose())
            .collect()
    }
    let out: ArrayRef = match kind {
        DataType::Int32 => Arc::new(Int32Array::from(each(texts, |t| integer(t, 32).map(|v| v as i32))?)),
        DataType::Int64 => Arc::new(Int64Array::from(each(texts, |t| integer(t, 64))?)),
        DataType::Float64 => Arc::new(Float64Array::from(each(texts, float)?)),
        DataType::Float32 => Arc::new(Float32Array::from(each(texts, float32)?)),
        DataType::Decimal128(p, s) => {
            let values = Decimal128Array::from(each(texts, |t| decimal(t, *p, *s))?);
            Arc::new(values.with_precision_and_scale(*p, *s).map_err(|e| (0, e.to_string()))?)
        }
        other => unreachable!("{other} is not decoded as text"),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_whole_and_in_range_or_refused() {
        assert_eq!(integer("42", 64), Ok(42));
        assert_eq!(integer("-0", 64), Ok(0));
        assert_eq!(integer("1e3", 64), Ok(1000));
        assert_eq!(integer("1.000", 64), Ok(1));
        assert_eq!(integer("12.5e1", 64), Ok(125));
        assert_eq!(integer("9223372036854775807", 64), Ok(i64::MAX));
        assert_eq!(integer("-9223372036854775808", 64), Ok(i64::MIN));
        assert_eq!(integer("1.5", 64).unwrap_err(), "has a fraction");
        assert!(integer("-9223372036854775809", 64).unwrap_err().contains("out of the range"));
        assert!(integer("99999999999999999999", 64).unwrap_err().contains("out of the range"));
        assert!(integer("2147483648", 32).unwrap_err().contains("int32"));
        assert!(integer("1e400", 64).unwrap_err().contains("range"));
        assert_eq!(integer("1e-400", 64).unwrap_err(), "has a fraction");
        for bad in ["", "-", ".", "1.2.3", "0x10", "1e", "NaN", "inf", " 1", "1 "] {
            assert_eq!(integer(bad, 64).unwrap_err(), "is not a number", "{bad:?}");
        }
    }

    #[test]
    fn decimals_keep_every_digit_or_are_refused() {
        assert_eq!(decimal("1.123456", 18, 6), Ok(1_123_456));
        assert_eq!(decimal("1.1234560", 18, 6), Ok(1_123_456));
        assert_eq!(decimal("-0.5", 18, 6), Ok(-500_000));
        assert_eq!(decimal("12e-1", 18, 6), Ok(1_200_000));
        assert_eq!(decimal("1.1234567", 18, 6).unwrap_err(), "has more than 6 decimal places");
        assert_eq!(decimal("1000000000000", 18, 6).unwrap_err(), "has more than 18 digits");
        assert_eq!(decimal("999999999999.999999", 18, 6), Ok(999_999_999_999_999_999));
        assert_eq!(decimal("99999999999999999999999999999999999999", 38, 0), Ok(10i128.pow(38) - 1));
    }

    #[test]
    fn floats_are_finite() {
        assert_eq!(float("1.5"), Ok(1.5));
        assert_eq!(float("-2e-3"), Ok(-0.002));
        assert!(float("1e400").unwrap_err().contains("too large"));
        assert!(float("NaN").is_err() && float("Infinity").is_err());
        let as_f32 = convert(&(Arc::new(StringArray::from(vec!["1e39"])) as ArrayRef), &DataType::Float32);
        assert!(as_f32.unwrap_err().1.contains("float32"));
    }

    #[test]
    fn a_column_converts_whole_or_names_its_first_bad_row() {
        let column: ArrayRef = Arc::new(StringArray::from(vec![Some("1"), None, Some("1.5"), Some("x")]));
        assert_eq!(convert(&column, &DataType::Int64).unwrap_err(), (2, "`1.5` has a fraction".into()));
        let good: ArrayRef = Arc::new(StringArray::from(vec![Some("1"), None, Some("-7")]));
        let out = convert(&good, &DataType::Int64).unwrap();
        let out = out.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(-7)]);
    }
}
