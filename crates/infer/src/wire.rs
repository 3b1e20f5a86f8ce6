//! Request and response byte formats: a magic, a small JSON header (kind, format version,
//! parameter set, model id, section lengths) and the ciphertext sections in TFHE-rs's versioned
//! safe serialization. Readers check the header against the model's interface before decoding
//! any ciphertext, and every section under a size limit derived from the interface.

use fhe::{LweBatch, ParameterSetId, SeededGlweBatch};
use serde::{Deserialize, Serialize};

use crate::error::{InferError, Result, malformed};
use crate::interface::ModelInterface;

const MAGIC: &[u8; 8] = b"DLRMHE\x00\x01";
pub(crate) const MAX_HEADER_BYTES: usize = 4096;
/// Version of the request and response formats.
pub const WIRE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kind: String,
    version: u32,
    parameter_set: ParameterSetId,
    model_id: String,
    sections: Vec<u64>,
}

/// An encrypted inference request: the dense features in GLWE coefficients and the one-hot
/// (digit) query of the categorical ids.
pub struct Request {
    /// The [`ModelInterface::model_id`] of the model the request is for.
    pub model_id: String,
    /// The parameter set the ciphertexts are encrypted under.
    pub parameter_set: ParameterSetId,
    /// The quantized dense features, packed into GLWE coefficients.
    pub dense: SeededGlweBatch,
    /// Empty when the model has no tables.
    pub query: Option<SeededGlweBatch>,
}

/// The encrypted answer: the logit numerator as one LWE ciphertext.
pub struct Response {
    /// The [`ModelInterface::model_id`] of the model that answered.
    pub model_id: String,
    /// The parameter set the ciphertext is encrypted under.
    pub parameter_set: ParameterSetId,
    /// The logit numerator, one LWE ciphertext.
    pub logit: LweBatch,
}

pub(crate) fn encode(
    kind: &str,
    parameter_set: ParameterSetId,
    model_id: &str,
    sections: &[Vec<u8>],
) -> Vec<u8> {
    let header = Header {
        kind: kind.into(),
        version: WIRE_FORMAT_VERSION,
        parameter_set,
        model_id: model_id.into(),
        sections: sections.iter().map(|s| s.len() as u64).collect(),
    };
    let header = serde_json::to_vec(&header).expect("a header always serialises");
    let mut bytes = Vec::with_capacity(
        MAGIC.len() + 4 + header.len() + sections.iter().map(Vec::len).sum::<usize>(),
    );
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    for section in sections {
        bytes.extend_from_slice(section);
    }
    bytes
}

/// Splits `bytes` into its sections after checking magic, header, kind, version, parameter set
/// and model against `interface`.
pub(crate) fn decode<'a>(
    bytes: &'a [u8],
    what: &'static str,
    kind: &str,
    interface: &ModelInterface,
    max_sections: usize,
) -> Result<Vec<&'a [u8]>> {
    let (_, sections) = decode_kinds(bytes, what, &[kind], interface, max_sections)?;
    Ok(sections)
}

/// [`decode`] for a message of one of `kinds`, with the index of the kind it is.
pub(crate) fn decode_kinds<'a>(
    bytes: &'a [u8],
    what: &'static str,
    kinds: &[&str],
    interface: &ModelInterface,
    max_sections: usize,
) -> Result<(usize, Vec<&'a [u8]>)> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed(what, "does not start with the dlrm-he magic"))?;
    if rest.len() < 4 {
        return Err(malformed(what, "truncated header length"));
    }
    let (length, rest) = rest.split_at(4);
    let length = u32::from_le_bytes(length.try_into().expect("four bytes")) as usize;
    if length > MAX_HEADER_BYTES || length > rest.len() {
        return Err(malformed(what, format!("header of {length} bytes")));
    }
    let (header, mut rest) = rest.split_at(length);
    let header: Header =
        serde_json::from_slice(header).map_err(|e| malformed(what, format!("header: {e}")))?;
    let kind = kinds.iter().position(|&kind| kind == header.kind);
    let Some(kind) = kind.filter(|_| header.version == WIRE_FORMAT_VERSION) else {
        return Err(malformed(
            what,
            format!(
                "a {:?} of format version {}, expected {} of version {WIRE_FORMAT_VERSION}",
                header.kind,
                header.version,
                (kinds.iter())
                    .map(|kind| format!("a {kind:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    };
    if header.parameter_set != interface.parameter_set {
        return Err(fhe::FheError::ParameterSetMismatch {
            expected: interface.parameter_set,
            found: header.parameter_set,
        }
        .into());
    }
    if header.model_id != interface.model_id {
        return Err(InferError::ModelMismatch {
            what,
            expected: interface.model_id.clone(),
            found: header.model_id.chars().take(64).collect(),
        });
    }
    if header.sections.len() > max_sections {
        return Err(malformed(
            what,
            format!("{} sections", header.sections.len()),
        ));
    }
    let mut sections = Vec::with_capacity(header.sections.len());
    for &len in &header.sections {
        if len > rest.len() as u64 {
            return Err(malformed(what, "truncated section"));
        }
        let (section, tail) = rest.split_at(len as usize);
        sections.push(section);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(malformed(what, format!("{} trailing bytes", rest.len())));
    }
    Ok((kind, sections))
}

impl Request {
    /// The request as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut sections = vec![self.dense.to_bytes()?];
        if let Some(query) = &self.query {
            sections.push(query.to_bytes()?);
        }
        Ok(encode(
            "request",
            self.parameter_set,
            &self.model_id,
            &sections,
        ))
    }

    /// The largest request a well-formed client sends for `interface`: the seeded GLWE sections
    /// (one polynomial body each, about 16 KiB with N = 2048) plus headers, with slack. A
    /// service reads request bodies under this limit.
    ///
    /// ```
    /// let model = infer::testing::tiny_model();
    /// let interface = infer::ModelInterface::for_model(&model, fhe::ParameterSetId::default()).unwrap();
    /// let limit = infer::Request::max_bytes(&interface).unwrap();
    /// assert!(limit > 2 * 16 * 1024 && limit < 1 << 20);
    /// ```
    pub fn max_bytes(interface: &ModelInterface) -> Result<usize> {
        let (dense, query) = interface.request_glwe_counts()?;
        let polynomial = interface.parameter_set.parameters().polynomial_size().0;
        let per_glwe = polynomial * std::mem::size_of::<u64>() + 1024;
        Ok((dense + query) * per_glwe + MAX_HEADER_BYTES + 4096)
    }

    /// Reads a request for the model of `interface`, refusing other models, other parameter
    /// sets, wrong ciphertext counts and malformed bytes.
    pub fn from_bytes(bytes: &[u8], interface: &ModelInterface) -> Result<Self> {
        let what = "request";
        let sections = decode(bytes, what, "request", interface, 2)?;
        let counts = interface.request_glwe_counts()?;
        let (dense, query) = encrypted_inputs(&sections, interface, counts, 0, what)?;
        Ok(Request {
            model_id: interface.model_id.clone(),
            parameter_set: interface.parameter_set,
            dense,
            query,
        })
    }
}

/// The dense and query sections a request starts with (`counts` GLWE ciphertexts each; no
/// query section when its count is 0), checking that exactly `extra` sections follow them.
pub(crate) fn encrypted_inputs(
    sections: &[&[u8]],
    interface: &ModelInterface,
    (dense_count, query_count): (usize, usize),
    extra: usize,
    what: &'static str,
) -> Result<(SeededGlweBatch, Option<SeededGlweBatch>)> {
    let expected = 1 + usize::from(query_count > 0) + extra;
    if sections.len() != expected {
        return Err(malformed(
            what,
            format!("{} sections, expected {expected}", sections.len()),
        ));
    }
    let set = interface.parameter_set;
    let dense = read_glwes(sections[0], set, dense_count, "dense")?;
    let query = (query_count > 0)
        .then(|| read_glwes(sections[1], set, query_count, "query"))
        .transpose()?;
    Ok((dense, query))
}

/// A section of exactly `count` seeded GLWE ciphertexts.
fn read_glwes(
    bytes: &[u8],
    set: ParameterSetId,
    count: usize,
    name: &str,
) -> Result<SeededGlweBatch> {
    let batch = SeededGlweBatch::from_bytes(bytes, set, count)?;
    if batch.len() != count {
        return Err(malformed(
            "request",
            format!("{} {name} ciphertexts, expected {count}", batch.len()),
        ));
    }
    Ok(batch)
}

impl Response {
    /// The response as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(encode(
            "response",
            self.parameter_set,
            &self.model_id,
            &[self.logit.to_bytes()?],
        ))
    }

    /// Reads a response of the model of `interface`.
    pub fn from_bytes(bytes: &[u8], interface: &ModelInterface) -> Result<Self> {
        let sections = decode(bytes, "response", "response", interface, 1)?;
        let section = sections
            .first()
            .ok_or_else(|| malformed("response", "no ciphertext"))?;
        let logit = LweBatch::from_bytes(section, interface.parameter_set, 1)?;
        if logit.len() != 1 {
            return Err(malformed("response", "expected one ciphertext"));
        }
        Ok(Response {
            model_id: interface.model_id.clone(),
            parameter_set: interface.parameter_set,
            logit,
        })
    }
}

const BATCH_MAGIC: &[u8; 8] = b"DLRMHEB\x01";

/// Frames several requests (or responses) into one body: a magic, the item count (u32 LE), then
/// each item as its length (u64 LE) and its bytes.
///
/// ```
/// let body = infer::encode_batch(&[b"one".to_vec(), b"three".to_vec()]);
/// let items = infer::decode_batch(&body, 8).unwrap();
/// assert_eq!(items, vec![&b"one"[..], &b"three"[..]]);
/// assert!(infer::decode_batch(&body[..body.len() - 1], 8).is_err());
/// assert!(infer::decode_batch(&body, 1).is_err());
/// ```
pub fn encode_batch(items: &[Vec<u8>]) -> Vec<u8> {
    let total = items.iter().map(|item| item.len() + 8).sum::<usize>();
    let mut bytes = Vec::with_capacity(BATCH_MAGIC.len() + 4 + total);
    bytes.extend_from_slice(BATCH_MAGIC);
    bytes.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        bytes.extend_from_slice(&(item.len() as u64).to_le_bytes());
        bytes.extend_from_slice(item);
    }
    bytes
}

/// Splits a body written by [`encode_batch`] into its items, refusing more than `max_items`,
/// an empty batch, truncation and trailing bytes.
pub fn decode_batch(bytes: &[u8], max_items: usize) -> Result<Vec<&[u8]>> {
    let what = "batch";
    let mut rest = bytes
        .strip_prefix(BATCH_MAGIC)
        .ok_or_else(|| malformed(what, "does not start with the dlrm-he batch magic"))?;
    let count = take_le(&mut rest, 4).ok_or_else(|| malformed(what, "truncated count"))?;
    if count == 0 || count > max_items as u64 {
        return Err(malformed(
            what,
            format!("{count} items, expected 1 to {max_items}"),
        ));
    }
    let mut items = Vec::with_capacity(count as usize);
    for index in 0..count {
        let len = take_le(&mut rest, 8)
            .filter(|&len| len <= rest.len() as u64)
            .ok_or_else(|| malformed(what, format!("item {index} is truncated")))?;
        let (item, tail) = rest.split_at(len as usize);
        items.push(item);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(malformed(what, format!("{} trailing bytes", rest.len())));
    }
    Ok(items)
}

/// Reads a little-endian integer of `width` bytes (4 or 8) from the front of `bytes`.
fn take_le(bytes: &mut &[u8], width: usize) -> Option<u64> {
    if bytes.len() < width {
        return None;
    }
    let (head, tail) = bytes.split_at(width);
    *bytes = tail;
    let mut buffer = [0u8; 8];
    buffer[..width].copy_from_slice(head);
    Some(u64::from_le_bytes(buffer))
}
