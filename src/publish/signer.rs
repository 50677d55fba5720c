//! The service's keys as the [`ListSigner`] port: the one place where a list
//! to publish meets ES256 and the two document builders.

use super::{
    KeySet, ListParams, sign_compressed_bitstring_credential, sign_compressed_token_list,
    sign_token_cwt,
};
use crate::domain::ListFormat;
use crate::ports::{ListSigner, ListToSign, SignError};

fn params<'a>(list: &ListToSign<'a>) -> ListParams<'a> {
    ListParams {
        iss: list.iss,
        uri: list.uri,
        iat: list.iat,
        exp: list.exp,
        ttl: list.ttl,
    }
}

impl ListSigner for KeySet {
    fn sign(&self, list: &ListToSign<'_>) -> Result<String, SignError> {
        let params = params(list);
        let key = self.signing_key();
        match list.format {
            ListFormat::Token => sign_compressed_token_list(
                list.list,
                list.compressed,
                &params,
                list.aggregation_uri,
                key,
            ),
            ListFormat::Bitstring => {
                sign_compressed_bitstring_credential(list.list, list.compressed, &params, key)
            }
        }
        .map_err(SignError::new)
    }

    fn sign_cwt(&self, list: &ListToSign<'_>) -> Result<Vec<u8>, SignError> {
        match list.format {
            ListFormat::Token => sign_token_cwt(
                list.list,
                list.compressed,
                &params(list),
                list.aggregation_uri,
                self.signing_key(),
            )
            .map_err(SignError::new),
            ListFormat::Bitstring => Err(SignError::new("a Bitstring Status List has no CWT form")),
        }
    }

    /// A key set always holds its signing key.
    fn has_key(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Bits, CompressedList, Layout, StatusList};
    use crate::publish::{ServiceKey, decode_bitstring_credential, decode_token_list, jws};

    fn sign(keys: &KeySet, format: ListFormat, list: &StatusList) -> Result<String, SignError> {
        keys.sign(&ListToSign {
            format,
            list,
            compressed: &CompressedList::new(list.as_bytes()),
            iss: "https://s.example",
            uri: "https://s.example/t/ABCDEF012345",
            iat: 10,
            exp: 20,
            ttl: 5,
            aggregation_uri: None,
        })
    }

    #[test]
    fn signs_each_format_with_its_builder() {
        let keys = KeySet::new(ServiceKey::generate());
        let key = keys.signing_key().verifying_key();

        let mut token_list = StatusList::new(Layout::Ietf, Bits::Two, 16).unwrap();
        token_list.set(3, 2).unwrap();
        let token = sign(&keys, ListFormat::Token, &token_list).unwrap();
        let parts = jws::verify(&token, key).unwrap();
        let decoded = decode_token_list(&parts.payload, 1 << 20).unwrap();
        assert_eq!(decoded.list.get(3).unwrap(), 2);

        let mut w3c_list = StatusList::new(Layout::W3c, Bits::Two, 16).unwrap();
        w3c_list.set(7, 1).unwrap();
        let credential = sign(&keys, ListFormat::Bitstring, &w3c_list).unwrap();
        let parts = jws::verify(&credential, key).unwrap();
        let decoded = decode_bitstring_credential(&parts.payload, 1 << 20).unwrap();
        assert_eq!(decoded.list.get(7).unwrap(), 1);
        assert!(keys.has_key());
    }

    #[test]
    fn a_list_of_the_other_layout_is_a_sign_error_naming_the_cause() {
        let keys = KeySet::new(ServiceKey::generate());
        let list = StatusList::new(Layout::W3c, Bits::One, 16).unwrap();
        let err = sign(&keys, ListFormat::Token, &list).unwrap_err();
        assert!(err.to_string().contains("layout"), "{err}");
    }
}
