//! The two wire encodings of a packed list, and their bounded decoders.
//!
//! - IETF `lst`: base64url without padding of zlib (RFC 1950).
//! - W3C `encodedList`: multibase `u` + base64url without padding of GZIP.
//!
//! Any valid zlib or GZIP stream is conformant: what the standards ask is
//! that a decoder reads the same statuses, not that the compressed bytes equal
//! an example's. The encoders here compress in independent segments
//! ([`super::segmented`]), the same bytes a cached list is re-published from
//! incrementally.
//!
//! Decoders take a limit on the decompressed size: a few hundred bytes of
//! zlib can expand to gigabytes, and a verifier must not be the victim.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::read::{GzDecoder, ZlibDecoder};

use super::segmented::CompressedList;

/// The default limit on a decompressed list: 16 MiB, i.e. 2^27 one-bit entries.
pub const DEFAULT_DECODE_LIMIT: usize = 16 * 1024 * 1024;

/// Why an encoded list could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The text is not base64url without padding.
    #[error("the list is not valid base64url without padding")]
    BadBase64,
    /// A W3C `encodedList` that does not start with the multibase `u` prefix.
    #[error("encodedList must start with the multibase prefix 'u' (base64url, no padding)")]
    MissingMultibasePrefix,
    /// The bytes do not start with a zlib (RFC 1950) header using DEFLATE.
    #[error("the list is not zlib (RFC 1950) data: bad header")]
    BadZlibHeader,
    /// The bytes do not start with the GZIP magic number and DEFLATE method.
    #[error("the list is not GZIP data: bad header")]
    BadGzipHeader,
    /// The compressed stream is damaged or truncated.
    #[error("the compressed list is corrupt or truncated")]
    Corrupt,
    /// The list decompresses to more than the limit (a compression bomb).
    #[error("the list decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The list decompresses to nothing.
    #[error("the list is empty")]
    Empty,
}

/// Compresses raw list bytes into an IETF `lst` value.
pub fn encode_lst(bytes: &[u8]) -> String {
    CompressedList::new(bytes).lst()
}

/// zlib (RFC 1950): the raw compressed form used by JWT and CWT.
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    CompressedList::new(bytes).zlib()
}

/// Decodes an IETF `lst` value into raw list bytes.
///
/// # Errors
/// [`CodecError`] for bad base64, a non-zlib header, a corrupt stream, an empty
/// list, or output above `limit` bytes.
pub fn decode_lst(lst: &str, limit: usize) -> Result<Vec<u8>, CodecError> {
    let compressed = URL_SAFE_NO_PAD
        .decode(lst.as_bytes())
        .map_err(|_| CodecError::BadBase64)?;
    unzlib(&compressed, limit)
}

/// Decompresses zlib (RFC 1950) data with a size limit.
///
/// # Errors
/// As [`decode_lst`], without the base64 step.
pub fn unzlib(compressed: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    if !is_zlib_header(compressed) {
        return Err(CodecError::BadZlibHeader);
    }
    bounded_read(ZlibDecoder::new(compressed), limit)
}

/// Compresses raw list bytes into a W3C `encodedList` value.
pub fn encode_bitstring(bytes: &[u8]) -> String {
    CompressedList::new(bytes).encoded_list()
}

/// Decodes a W3C `encodedList` value into raw list bytes.
///
/// # Errors
/// [`CodecError`] for a missing `u` prefix, bad base64, a non-GZIP header, a
/// corrupt stream, an empty list, or output above `limit` bytes.
pub fn decode_bitstring(encoded: &str, limit: usize) -> Result<Vec<u8>, CodecError> {
    let body = encoded
        .strip_prefix('u')
        .ok_or(CodecError::MissingMultibasePrefix)?;
    let gz = URL_SAFE_NO_PAD
        .decode(body.as_bytes())
        .map_err(|_| CodecError::BadBase64)?;
    if gz.len() < 3 || gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8 {
        return Err(CodecError::BadGzipHeader);
    }
    bounded_read(GzDecoder::new(&gz[..]), limit)
}

/// RFC 1950: CM = 8 (DEFLATE), CINFO ≤ 7, no preset dictionary, and the
/// header checksum `(CMF*256 + FLG) % 31 == 0`.
fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

fn bounded_read(reader: impl Read, limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "above it"
    // without ever holding more than limit + 1 bytes.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| CodecError::Corrupt)?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    if out.is_empty() {
        return Err(CodecError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lst_round_trips() {
        let raw = vec![0xb9, 0xa3];
        let lst = encode_lst(&raw);
        assert_eq!(decode_lst(&lst, 1024).unwrap(), raw);
        // The draft's example bytes (C zlib, level 9) decode the same.
        assert_eq!(decode_lst("eNrbuRgAAhcBXQ", 1024).unwrap(), raw);
    }

    #[test]
    fn bitstring_round_trips() {
        let raw: Vec<u8> = (0..=255).collect();
        let enc = encode_bitstring(&raw);
        assert!(enc.starts_with("uH4sI"));
        assert_eq!(decode_bitstring(&enc, 1024).unwrap(), raw);
    }

    #[test]
    fn clear_errors_for_bad_input() {
        assert_eq!(decode_lst("!!", 10), Err(CodecError::BadBase64));
        assert_eq!(
            decode_lst("eNrbuRgAAhcBXQ==", 10),
            Err(CodecError::BadBase64)
        );
        assert_eq!(decode_lst("AAAA", 10), Err(CodecError::BadZlibHeader));
        assert_eq!(decode_lst("", 10), Err(CodecError::BadZlibHeader));
        let gz = encode_bitstring(&[1, 2, 3]);
        assert_eq!(
            decode_bitstring(&gz[1..], 10),
            Err(CodecError::MissingMultibasePrefix)
        );
        assert_eq!(
            decode_bitstring(&format!("z{}", &gz[1..]), 10),
            Err(CodecError::MissingMultibasePrefix)
        );
        // zlib data where GZIP is expected, and the other way round
        assert_eq!(
            decode_bitstring(&format!("u{}", encode_lst(&[1])), 10),
            Err(CodecError::BadGzipHeader)
        );
        assert_eq!(decode_lst(&gz[1..], 10), Err(CodecError::BadZlibHeader));
        // truncated stream (cut in bytes: a cut in base64 text may leave an
        // invalid base64 length instead)
        let zlib = zlib(&[7; 100]);
        let cut = URL_SAFE_NO_PAD.encode(&zlib[..zlib.len() - 3]);
        assert_eq!(decode_lst(&cut, 1000), Err(CodecError::Corrupt));
    }

    #[test]
    fn limit_is_inclusive() {
        let lst = encode_lst(&[0; 64]);
        assert_eq!(decode_lst(&lst, 64).unwrap().len(), 64);
        assert_eq!(
            decode_lst(&lst, 63),
            Err(CodecError::TooLarge { limit: 63 })
        );
    }
}
