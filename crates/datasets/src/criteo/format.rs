//! The raw line format: `label \t I1..I13 \t C1..C26`, parsed field by field.

/// Dense (integer) features per row.
pub const DENSE_FEATURES: usize = 13;
/// Categorical (hex id) features per row.
pub const CATEGORICAL_FEATURES: usize = 26;
/// Tab-separated fields per line: the label, then the features.
pub const FIELDS: usize = 1 + DENSE_FEATURES + CATEGORICAL_FEATURES;

/// `I1`..`I13`.
pub fn dense_names() -> Vec<String> {
    (1..=DENSE_FEATURES).map(|i| format!("I{i}")).collect()
}

/// `C1`..`C26`.
pub fn categorical_names() -> Vec<String> {
    (1..=CATEGORICAL_FEATURES)
        .map(|i| format!("C{i}"))
        .collect()
}

/// One raw line, parsed but not yet mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRow {
    /// The click label, 0 or 1.
    pub label: u8,
    /// `I1`..`I13`, `None` where the field is empty.
    pub dense: [Option<f64>; DENSE_FEATURES],
    /// `C1`..`C26` as the 32-bit values of their hex strings, `None` where the field is empty.
    pub categorical: [Option<u32>; CATEGORICAL_FEATURES],
}

/// Parses one line of the raw format (without its newline).
///
/// ```
/// let mut line = String::from("1\t5\t-2");
/// line += &"\t".repeat(11);
/// line += "\t68fd1e64";
/// line += &"\t".repeat(25);
/// let row = datasets::criteo::parse_line(line.as_bytes()).unwrap();
/// assert_eq!(row.label, 1);
/// assert_eq!(row.dense[0], Some(5.0));
/// assert_eq!(row.dense[1], Some(-2.0));
/// assert_eq!(row.dense[2], None);
/// assert_eq!(row.categorical[0], Some(0x68fd1e64));
/// assert_eq!(row.categorical[1], None);
/// assert!(datasets::criteo::parse_line(b"1\t2").is_err());
/// ```
pub fn parse_line(line: &[u8]) -> Result<RawRow, String> {
    let count = memchr::memchr_iter(b'\t', line).count() + 1;
    if count != FIELDS {
        return Err(format!(
            "expected {FIELDS} tab-separated fields, found {count}"
        ));
    }
    let mut fields = line.split(|&b| b == b'\t');
    let mut next = || fields.next().expect("the field count was checked");
    let label = match next() {
        b"0" => 0,
        b"1" => 1,
        other => return Err(format!("label must be 0 or 1, found {:?}", lossy(other))),
    };
    let mut dense = [None; DENSE_FEATURES];
    for (i, value) in dense.iter_mut().enumerate() {
        *value = parse_dense(next()).map_err(|e| format!("I{}: {e}", i + 1))?;
    }
    let mut categorical = [None; CATEGORICAL_FEATURES];
    for (i, value) in categorical.iter_mut().enumerate() {
        *value = parse_hex(next()).map_err(|e| format!("C{}: {e}", i + 1))?;
    }
    Ok(RawRow {
        label,
        dense,
        categorical,
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned()
}

fn parse_dense(field: &[u8]) -> Result<Option<f64>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    // Integers are the format; the float fallback accepts files re-exported by other tools.
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let magnitude = digits
            .iter()
            .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        return Ok(Some(if negative { -magnitude } else { magnitude } as f64));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map(Some)
        .ok_or_else(|| format!("not a number: {:?}", lossy(field)))
}

fn parse_hex(field: &[u8]) -> Result<Option<u32>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    if field.len() > 8 {
        return Err(format!("hex id longer than 8 digits: {:?}", lossy(field)));
    }
    let mut value = 0u32;
    for &b in field {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(format!("not a hex id: {:?}", lossy(field))),
        };
        value = value << 4 | u32::from(digit);
    }
    Ok(Some(value))
}

/// The canonical raw form of a categorical id, as vocabularies store it (8 lower-case digits).
pub fn format_hex(id: u32) -> String {
    format!("{id:08x}")
}
