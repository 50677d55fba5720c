//! Identifiers that arrive from outside: list ids, client ids, list formats
//! and list URIs. Each exists only through `parse`, so a value of these types
//! is always well formed and safe to put into a Redis key or a URL.

use std::fmt;
use std::str::FromStr;

use super::packed::Layout;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 12 upper-case hexadecimal characters.
    #[error("a list id is 12 upper-case hexadecimal characters")]
    BadListId,
    /// Empty, too long, or holding characters a client id may not have.
    #[error("a client id is 1 to 128 printable ASCII characters without spaces, braces or slashes")]
    BadClientId,
    /// Neither `token` nor `bitstring`.
    #[error("a list format is 'token' or 'bitstring'")]
    BadFormat,
    /// A URI that is not `<base>/t/<id>` or `<base>/b/<id>`.
    #[error("not a status list URI of this service")]
    BadListUri,
    /// Not a lowercase hyphenated UUID.
    #[error("a jti is a lowercase hyphenated UUID")]
    BadJti,
    /// Empty, too long, or holding a character outside printable ASCII.
    #[error("a ref is 1 to 128 printable ASCII characters")]
    BadRef,
}

/// A list's public id: 12 upper-case hexadecimal characters (48 random bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListId([u8; 12]);

impl ListId {
    /// Checks and wraps a list id as found in a URL or a store key.
    ///
    /// # Errors
    /// [`IdError::BadListId`] unless `s` is exactly 12 characters of `0-9A-F`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes: [u8; 12] = s.as_bytes().try_into().map_err(|_| IdError::BadListId)?;
        if bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        {
            Ok(ListId(bytes))
        } else {
            Err(IdError::BadListId)
        }
    }

    /// A fresh random id from the operating system's generator.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut raw = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        Self::from_random_bytes(raw)
    }

    /// The id spelled by six bytes (for tests and deterministic tools).
    pub fn from_random_bytes(raw: [u8; 6]) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [0u8; 12];
        for (i, b) in raw.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        ListId(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored (checked in `parse`, produced
        // in `from_random_bytes`), so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("000000000000")
    }
}

impl fmt::Display for ListId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ListId::parse(s)
    }
}

/// A request's `jti`: a lowercase hyphenated UUID, as CRS requires. Checked
/// once when the request is authenticated; from then on it is part of store
/// keys and idempotency records, which rely on its fixed, harmless shape (no
/// braces, slashes or colons, always 36 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jti(String);

impl Jti {
    /// Checks and wraps a jti.
    ///
    /// # Errors
    /// [`IdError::BadJti`] for anything but a lowercase hyphenated UUID.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if is_lowercase_uuid(s) {
            Ok(Jti(s.to_owned()))
        } else {
            Err(IdError::BadJti)
        }
    }

    /// The jti whose UUID is these 16 bytes (any bytes make a well-formed
    /// jti: callers that generate their own, and tests that derive one from
    /// a name).
    pub fn from_uuid_bytes(raw: [u8; 16]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(36);
        for (i, b) in raw.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Jti(s)
    }

    /// A jti derived from a name (BLAKE3 of the name, as a UUID): the same
    /// name gives the same jti. For tests, benchmarks and tools that need
    /// reproducible requests; a real issuer sends a random one.
    pub fn from_name(name: &str) -> Self {
        let mut raw = [0; 16];
        raw.copy_from_slice(&blake3::hash(name.as_bytes()).as_bytes()[..16]);
        Jti::from_uuid_bytes(raw)
    }

    /// The jti as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16 bytes of the UUID (the inverse of [`Jti::from_uuid_bytes`]):
    /// the compact form stores keep records under.
    pub fn uuid_bytes(&self) -> [u8; 16] {
        // Parsing checked 32 lowercase hex digits around the hyphens, so
        // every nibble below is a hex digit.
        let nibble = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        };
        let mut out = [0u8; 16];
        let digits = self.0.bytes().filter(|c| *c != b'-');
        for (i, c) in digits.enumerate().take(32) {
            out[i / 2] |= nibble(c) << if i % 2 == 0 { 4 } else { 0 };
        }
        out
    }
}

impl fmt::Display for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Jti {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jti::parse(s)
    }
}

/// True for `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with lowercase hex digits.
pub fn is_lowercase_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// A registered client's id: the `iss` of its request JWTs.
///
/// Restricted to printable ASCII without spaces, `{`, `}` or `/`, so that it
/// can sit inside a Redis Cluster hash tag (`{client}`) and a file name
/// without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// The longest client id accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps a client id.
    ///
    /// # Errors
    /// [`IdError::BadClientId`] for an empty or over-long id, or one with a
    /// character outside printable ASCII or one of ` {}/`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'{' | b'}' | b'/'));
        if ok {
            Ok(ClientId(s.to_owned()))
        } else {
            Err(IdError::BadClientId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClientId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientId::parse(s)
    }
}

/// Lets a map keyed by `ClientId` be searched with the `iss` of a request
/// as sent. Sound because the derived `Hash` and `Eq` of `ClientId` are
/// those of its text.
impl std::borrow::Borrow<str> for ClientId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The last path segment of the Status List Aggregation
/// ([`ListFormat::aggregation_uri`]).
pub const AGGREGATION_SEGMENT: &str = "aggregation";

/// Which standard a client's lists are published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// IETF Token Status List, served under `/t/{id}` as `statuslist+jwt`.
    Token,
    /// W3C Bitstring Status List, served under `/b/{id}` as `vc+jwt`.
    Bitstring,
}

impl ListFormat {
    /// The path segment of lists of this format: `t` or `b`.
    pub const fn path_segment(self) -> &'static str {
        match self {
            ListFormat::Token => "t",
            ListFormat::Bitstring => "b",
        }
    }

    /// The bit order of lists of this format.
    pub const fn layout(self) -> Layout {
        match self {
            ListFormat::Token => Layout::Ietf,
            ListFormat::Bitstring => Layout::W3c,
        }
    }

    /// The URI of the Status List Aggregation of this format's lists under
    /// `base` (draft-ietf-oauth-status-list §9): `<base>/t/aggregation` for
    /// Token Status Lists; `None` for W3C lists, whose data model has no
    /// aggregation member. `aggregation` cannot be a list id (ids are 12
    /// uppercase hex digits), so the path never hides a list.
    pub fn aggregation_uri(self, base: &str) -> Option<String> {
        match self {
            ListFormat::Token => Some(format!(
                "{}/{}/{AGGREGATION_SEGMENT}",
                base.trim_end_matches('/'),
                self.path_segment()
            )),
            ListFormat::Bitstring => None,
        }
    }

    /// The format's name in configuration: `token` or `bitstring`.
    pub const fn name(self) -> &'static str {
        match self {
            ListFormat::Token => "token",
            ListFormat::Bitstring => "bitstring",
        }
    }
}

impl fmt::Display for ListFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ListFormat {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(ListFormat::Token),
            "bitstring" => Ok(ListFormat::Bitstring),
            _ => Err(IdError::BadFormat),
        }
    }
}

/// An issuer's own reference for an issuance (`ref`): 1 to
/// [`IssuanceRef::MAX_LEN`] printable ASCII characters (space included).
///
/// A ref names the entries a client bound to it: every `/issue` of that
/// client carrying it adds its entries, and a change by ref applies to all
/// of them. Refs are per client: another client's identical text is another
/// reference. Only printable ASCII, so a ref is safe in a store key, a log
/// line and a query string (percent-encoded) alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuanceRef(String);

impl IssuanceRef {
    /// The longest ref accepted, in characters (= bytes: ASCII only).
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps a ref.
    ///
    /// # Errors
    /// [`IdError::BadRef`] for an empty or over-long ref, or one with a
    /// character outside printable ASCII (0x20 to 0x7E).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if ok {
            Ok(IssuanceRef(s.to_owned()))
        } else {
            Err(IdError::BadRef)
        }
    }

    /// The ref as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssuanceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IssuanceRef {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IssuanceRef::parse(s)
    }
}

/// The public URI of a list: `<base>/<t|b>/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListRef {
    /// The list's format, from the path segment.
    pub format: ListFormat,
    /// The list's id.
    pub id: ListId,
}

impl ListRef {
    /// The URI of this list under `base` (no trailing slash expected; one is
    /// tolerated).
    pub fn uri(&self, base: &str) -> String {
        format!(
            "{}/{}/{}",
            base.trim_end_matches('/'),
            self.format.path_segment(),
            self.id
        )
    }

    /// Reads a list URI of the service whose public base URL is `base`.
    ///
    /// # Errors
    /// [`IdError::BadListUri`] unless `uri` is exactly `base` + `/t/` or `/b/`
    /// + a valid list id (no query, fragment or extra segments).
    pub fn parse_uri(base: &str, uri: &str) -> Result<Self, IdError> {
        let rest = uri
            .strip_prefix(base.trim_end_matches('/'))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(IdError::BadListUri)?;
        let (segment, id) = rest.split_once('/').ok_or(IdError::BadListUri)?;
        let format = match segment {
            "t" => ListFormat::Token,
            "b" => ListFormat::Bitstring,
            _ => return Err(IdError::BadListUri),
        };
        let id = ListId::parse(id).map_err(|_| IdError::BadListUri)?;
        Ok(ListRef { format, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_lists_have_an_aggregation_and_it_is_no_list_id() {
        assert_eq!(
            ListFormat::Token
                .aggregation_uri("https://s.example/")
                .as_deref(),
            Some("https://s.example/t/aggregation")
        );
        assert_eq!(
            ListFormat::Bitstring.aggregation_uri("https://s.example"),
            None
        );
        assert!(ListId::parse(AGGREGATION_SEGMENT).is_err());
    }

    #[test]
    fn a_jti_is_its_uuid_bytes() {
        for raw in [[0u8; 16], [0xff; 16], *b"0123456789abcdef"] {
            assert_eq!(Jti::from_uuid_bytes(raw).uuid_bytes(), raw);
        }
        let jti = Jti::parse("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d").unwrap();
        assert_eq!(
            jti.uuid_bytes(),
            [
                0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x4a, 0x6b, 0x8c, 0x7d, 0x9e, 0x0f, 0x1a, 0x2b,
                0x3c, 0x4d
            ]
        );
    }

    #[test]
    fn list_ids() {
        assert!(ListId::parse("A671FED3E9AD").is_ok());
        for bad in [
            "a671fed3e9ad",
            "A671FED3E9A",
            "A671FED3E9ADX",
            "G671FED3E9AD",
            "",
            "A671FED3E9A\u{e9}",
        ] {
            assert_eq!(ListId::parse(bad), Err(IdError::BadListId), "{bad:?}");
        }
        let id = ListId::from_random_bytes([0xa6, 0x71, 0xfe, 0xd3, 0xe9, 0xad]);
        assert_eq!(id.as_str(), "A671FED3E9AD");
        assert_ne!(ListId::random(), ListId::random());
        assert!(ListId::parse(ListId::random().as_str()).is_ok());
    }

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("clientId-abcdef").is_ok());
        assert!(ClientId::parse("https://issuer.example").is_err());
        for bad in ["", "a b", "a{b}", "x\n", "é", &"x".repeat(129)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn issuance_refs() {
        for ok in ["a", "order 42/line#3", "~!{}", &"x".repeat(128)] {
            assert_eq!(IssuanceRef::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "tab\there",
            "new\nline",
            "caf\u{e9}",
            "\u{7f}",
            &"x".repeat(129),
        ] {
            assert_eq!(IssuanceRef::parse(bad), Err(IdError::BadRef), "{bad:?}");
        }
    }

    #[test]
    fn list_uris() {
        let base = "https://crs.example";
        let r = ListRef::parse_uri(base, "https://crs.example/b/A671FED3E9AD").unwrap();
        assert_eq!(r.format, ListFormat::Bitstring);
        assert_eq!(r.uri(base), "https://crs.example/b/A671FED3E9AD");
        assert_eq!(
            r.uri("https://crs.example/"),
            "https://crs.example/b/A671FED3E9AD"
        );
        for bad in [
            "https://other.example/b/A671FED3E9AD",
            "https://crs.example/x/A671FED3E9AD",
            "https://crs.example/b/A671FED3E9AD/",
            "https://crs.example/b/A671FED3E9AD?x=1",
            "https://crs.example.evil/b/A671FED3E9AD",
            "https://crs.exampleb/A671FED3E9AD",
            "https://crs.example/t/a671fed3e9ad",
            "",
        ] {
            assert!(ListRef::parse_uri(base, bad).is_err(), "{bad}");
        }
    }
}
