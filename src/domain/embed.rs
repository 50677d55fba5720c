//! What an issuer embeds in a credential to point at its status entry: the
//! IETF `status.status_list` member for token lists, the W3C
//! `BitstringStatusListEntry` for bitstring lists, and the `statusMessage`
//! table the entry and the published list credential both carry.
//!
//! One copy of the table, here, so that the `/issue` answer and the signed
//! list can never disagree on what a value means.

use serde::{Deserialize, Serialize};

use super::ids::ListFormat;
use super::status::Status;

/// The `statusPurpose` of every bitstring list of this service.
pub const STATUS_PURPOSE: &str = "message";

/// The `statusSize` of every bitstring list of this service (bits per
/// entry).
pub const STATUS_SIZE: u8 = 2;

/// The `type` of a W3C status entry.
pub const BITSTRING_ENTRY_TYPE: &str = "BitstringStatusListEntry";

/// One row of `statusMessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// The value as a hexadecimal string, e.g. `0x1`.
    pub status: String,
    /// Its meaning, e.g. `INVALID`.
    pub message: String,
}

/// The `statusMessage` table of this service's bitstring lists: the three
/// values the service sets, with the names of the IETF registry
/// (`0x0` VALID, `0x1` INVALID, `0x2` SUSPENDED).
pub fn status_messages() -> Vec<StatusMessage> {
    [Status::Valid, Status::Invalid, Status::Suspended]
        .into_iter()
        .map(|s| StatusMessage {
            status: format!("{:#x}", s.value()),
            message: s.name().to_owned(),
        })
        .collect()
}

/// The IETF Token Status List reference of one entry: `{"idx", "uri"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListReference {
    /// The entry's index.
    pub idx: u64,
    /// The list's URI.
    pub uri: String,
}

/// The `status` claim of a credential pointing at a token-list entry:
/// `{"status_list": {"idx", "uri"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// The reference.
    pub status_list: StatusListReference,
}

/// A W3C `BitstringStatusListEntry` (the `credentialStatus` of a credential
/// pointing at a bitstring-list entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BitstringStatusListEntry {
    /// `<list URI>#<idx>`.
    pub id: String,
    /// [`BITSTRING_ENTRY_TYPE`].
    #[serde(rename = "type")]
    pub type_: String,
    /// [`STATUS_PURPOSE`].
    pub status_purpose: String,
    /// The entry's index, as a string (the spec's type).
    pub status_list_index: String,
    /// The list credential's URI.
    pub status_list_credential: String,
    /// [`STATUS_SIZE`].
    pub status_size: u8,
    /// [`status_messages`].
    pub status_message: Vec<StatusMessage>,
}

/// What to embed in a credential for one entry, by list format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CredentialStatus {
    /// A token-list entry.
    Token(TokenStatus),
    /// A bitstring-list entry.
    Bitstring(BitstringStatusListEntry),
}

impl CredentialStatus {
    /// The embed of entry `idx` of the list at `uri`, whose format is
    /// `format`.
    pub fn of(format: ListFormat, idx: u64, uri: &str) -> Self {
        match format {
            ListFormat::Token => CredentialStatus::Token(TokenStatus {
                status_list: StatusListReference {
                    idx,
                    uri: uri.to_owned(),
                },
            }),
            ListFormat::Bitstring => CredentialStatus::Bitstring(BitstringStatusListEntry {
                id: format!("{uri}#{idx}"),
                type_: BITSTRING_ENTRY_TYPE.to_owned(),
                status_purpose: STATUS_PURPOSE.to_owned(),
                status_list_index: idx.to_string(),
                status_list_credential: uri.to_owned(),
                status_size: STATUS_SIZE,
                status_message: status_messages(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_is_the_registry() {
        assert_eq!(
            serde_json::to_value(status_messages()).unwrap(),
            json!([
                {"status": "0x0", "message": "VALID"},
                {"status": "0x1", "message": "INVALID"},
                {"status": "0x2", "message": "SUSPENDED"},
            ])
        );
    }

    #[test]
    fn embeds_by_format() {
        let uri = "https://s.example/t/A671FED3E9AD";
        assert_eq!(
            serde_json::to_value(CredentialStatus::of(ListFormat::Token, 7, uri)).unwrap(),
            json!({"status_list": {"idx": 7, "uri": uri}})
        );
        let uri = "https://s.example/b/A671FED3E9AD";
        assert_eq!(
            serde_json::to_value(CredentialStatus::of(ListFormat::Bitstring, 7, uri)).unwrap(),
            json!({
                "id": format!("{uri}#7"),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "message",
                "statusListIndex": "7",
                "statusListCredential": uri,
                "statusSize": 2,
                "statusMessage": [
                    {"status": "0x0", "message": "VALID"},
                    {"status": "0x1", "message": "INVALID"},
                    {"status": "0x2", "message": "SUSPENDED"},
                ],
            })
        );
    }
}
