//! The one error type of the publish layer.
//!
//! Texts name what went wrong and where (a file path, a claim), never the
//! content of a key or a token: error texts end up in logs and HTTP bodies.

use std::path::PathBuf;

use crate::domain::{Bits, CodecError, Layout};

/// Why a key could not be made, loaded or saved, or a list token could not be
/// built, split, verified or decoded.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading or writing a key file (or its directory) failed. The OS error
    /// is the `source`, so that error chains print it once.
    #[error("{action} {path}")]
    Io {
        /// What was being done, e.g. "cannot write key file".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a PEM key of the expected kind. The parser's own error
    /// is dropped on purpose: nothing of the file's content is repeated.
    #[error("{what} is not a {expected} PEM")]
    BadPem {
        /// Which input: a file path or "key text".
        what: String,
        /// What was expected, e.g. "PKCS#8 P-256 private key".
        expected: &'static str,
    },
    /// A key file named after one `kid` holds a key with another.
    #[error("{path} holds the key {found}, not {expected}")]
    KidMismatch {
        /// The file.
        path: PathBuf,
        /// The `kid` its name promised.
        expected: String,
        /// The `kid` of the key inside.
        found: String,
    },
    /// A certificate chain file that cannot be the signing key's `x5c`.
    #[error("{path}: {reason}")]
    BadCertificateChain {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: &'static str,
    },
    /// A JWK that does not describe a P-256 public key.
    #[error("the JWK is not a P-256 public key: {0}")]
    BadJwk(&'static str),
    /// The list has the other standard's bit order.
    #[error("a {format} must be built from a {expected:?}-layout list, not {got:?}")]
    WrongLayout {
        /// The document being built.
        format: &'static str,
        /// The layout it needs.
        expected: Layout,
        /// The layout the list has.
        got: Layout,
    },
    /// The list's width is not the one the document publishes.
    #[error("a {format} needs {expected}-bit entries, the list has {got}-bit entries")]
    WrongBits {
        /// The document being built.
        format: &'static str,
        /// The width it needs.
        expected: Bits,
        /// The width the list has.
        got: Bits,
    },
    /// Issuance parameters that cannot make a valid token (for example `exp`
    /// not after `iat`, or a time outside the RFC 3339 range).
    #[error("bad token parameters: {0}")]
    BadParams(&'static str),
    /// A compact JWS that is not three base64url parts of JSON.
    #[error("malformed JWS: {0}")]
    MalformedJws(&'static str),
    /// A JWS header or payload whose JSON does not have the expected shape.
    /// Only the part and the position are reported, not the content.
    #[error("the {part} is not the expected JSON (line {line}, column {column})")]
    BadJson {
        /// "header", "payload", "claims"...
        part: &'static str,
        /// serde_json's line.
        line: usize,
        /// serde_json's column.
        column: usize,
    },
    /// Bytes that are not a tagged COSE_Sign1, or a CWT claims set without
    /// the draft's shape. Only the fault is reported, not the content.
    #[error("malformed CWT: {0}")]
    MalformedCwt(&'static str),
    /// The header asks for an algorithm other than ES256.
    #[error("unsupported JWS algorithm: only ES256 is accepted")]
    UnsupportedAlg,
    /// The signature does not verify with the given key.
    #[error("the JWS signature does not verify")]
    BadSignature,
    /// The document is well formed JSON but not a status list of the expected
    /// kind.
    #[error("not a status list document: {0}")]
    NotAStatusList(&'static str),
    /// The encoded list inside the document cannot be decoded.
    #[error("the encoded list cannot be decoded: {0}")]
    Codec(#[from] CodecError),
}

impl PublishError {
    /// Wraps a serde_json error without its message, which may quote input.
    pub(crate) fn json(part: &'static str, err: &serde_json::Error) -> Self {
        PublishError::BadJson {
            part,
            line: err.line(),
            column: err.column(),
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        PublishError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
