//! The versioned wire format shared by every object that crosses the network: TFHE-rs safe
//! serialization (a header naming the type and its format version, then the versioned bincode
//! body) with a size limit on both ends, so untrusted bytes can neither exhaust memory nor be
//! mistaken for another type.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe_versionable::{Unversionize, Versionize};

use crate::error::{FheError, Result};

/// Bytes allowed on top of an object's payload for the header and the length prefixes.
pub(crate) const HEADER_ALLOWANCE: u64 = 4096;

pub(crate) fn encode<T: Serialize + Versionize + Named>(
    object: &T,
    what: &'static str,
    size_limit: u64,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    safe_serialize(object, &mut bytes, size_limit).map_err(|error| FheError::Encode {
        what,
        reason: error.to_string(),
    })?;
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned + Unversionize + Named>(
    bytes: &[u8],
    what: &'static str,
    size_limit: u64,
) -> Result<T> {
    if bytes.len() as u64 > size_limit {
        return Err(FheError::Decode {
            what,
            reason: format!("{} bytes exceed the limit of {size_limit}", bytes.len()),
        });
    }
    let mut reader = bytes;
    let object = safe_deserialize(&mut reader, size_limit)
        .map_err(|reason| FheError::Decode { what, reason })?;
    if !reader.is_empty() {
        return Err(FheError::Decode {
            what,
            reason: format!("{} trailing bytes", reader.len()),
        });
    }
    Ok(object)
}

/// Checks one dimension of a decoded object against the value its parameter set implies.
pub(crate) fn expect_dimension(
    what: &'static str,
    field: &str,
    expected: usize,
    found: usize,
) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(FheError::Malformed {
            what,
            reason: format!("{field} is {found}, the parameter set requires {expected}"),
        })
    }
}
