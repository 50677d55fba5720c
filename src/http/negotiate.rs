//! Content negotiation and conditional requests of the list GETs: which
//! media type a Token Status List is sent as (`Accept`, RFC 9110 §12.5.1:
//! JWT or CWT), which coding to send (`Accept-Encoding`, §12.5.3) and
//! whether the client already holds a representation (`If-None-Match`,
//! §13.1.2).
//!
//! They run on every GET of a list, so they read the header text in place:
//! no allocation, no regex, no lower-casing copies.

use actix_web::http::header::{self, HeaderMap};

/// The media types a Token Status List is served as (draft-ietf-oauth-status-list
/// §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/statuslist+jwt`: the compact JWS.
    Jwt,
    /// `application/statuslist+cwt`: the COSE_Sign1 CWT, binary.
    Cwt,
}

/// Picks the media type of a Token Status List from every `Accept` field of
/// a request; `None` when the field allows neither (→ 406).
///
/// Each type takes the q-value of the most specific range that names it
/// (RFC 9110 §12.5.1): its own type, else its generic alias
/// (`application/jwt`, RFC 7519 §10.3.1; `application/cwt`, RFC 8392 §9.2:
/// a client that takes any JWT or CWT takes ours), else `application/*`,
/// else `*/*`, else 0. CWT is sent only when its q-value is strictly
/// higher; without a preference (no `Accept`, an empty one, `*/*`, equal
/// q-values) the JWT is sent, as before CWT existed, so CRS clients see no
/// change. A range with parameters other than `q` still matches (our types
/// take none); a range listed twice counts with its lowest q-value; an
/// entry with a malformed q-value is ignored.
pub fn accept_media(headers: &HeaderMap) -> Option<Media> {
    // Per type: [own, alias]; shared: application/*, */*.
    let mut jwt: [Option<u16>; 2] = [None, None];
    let mut cwt: [Option<u16>; 2] = [None, None];
    let mut application: Option<u16> = None;
    let mut any: Option<u16> = None;
    let mut present = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().map(str::trim).unwrap_or_default();
            if range.is_empty() {
                continue;
            }
            present = true;
            let Some(q) = qvalue(parts) else { continue };
            let Some((kind, sub)) = range.split_once('/') else {
                continue;
            };
            let (kind, sub) = (kind.trim(), sub.trim());
            let slot = if kind == "*" && sub == "*" {
                &mut any
            } else if !kind.eq_ignore_ascii_case("application") {
                continue;
            } else if sub == "*" {
                &mut application
            } else if sub.eq_ignore_ascii_case("statuslist+jwt") {
                &mut jwt[0]
            } else if sub.eq_ignore_ascii_case("jwt") {
                &mut jwt[1]
            } else if sub.eq_ignore_ascii_case("statuslist+cwt") {
                &mut cwt[0]
            } else if sub.eq_ignore_ascii_case("cwt") {
                &mut cwt[1]
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |old| old.min(q)));
        }
    }
    if !present {
        return Some(Media::Jwt);
    }
    // (q-value, specificity of the range it came from: 2 named, 1
    // `application/*`, 0 `*/*`).
    let rank = |own: [Option<u16>; 2]| match (own[0].or(own[1]), application, any) {
        (Some(q), _, _) => (q, 2),
        (None, Some(q), _) => (q, 1),
        (None, None, Some(q)) => (q, 0),
        (None, None, None) => (0, 0),
    };
    let (jwt, cwt) = (rank(jwt), rank(cwt));
    if cwt.0 > 0 && cwt > jwt {
        Some(Media::Cwt)
    } else if jwt.0 > 0 {
        Some(Media::Jwt)
    } else {
        None
    }
}

/// A content coding the list responses are available in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No content coding: the token as signed.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// What a request's `Accept-Encoding` allows: the coding to send, and which
/// codings the client can take at all (a 304 may point it at a stored
/// representation in either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The coding of a 200 response.
    pub chosen: Coding,
    /// gzip has a q-value above 0.
    pub gzip: bool,
    /// identity has not been refused (`identity;q=0`, or `*;q=0` without an
    /// `identity` entry).
    pub identity: bool,
}

impl Accepted {
    /// Whether the client accepts a response in `coding`.
    pub fn allows(self, coding: Coding) -> bool {
        match coding {
            Coding::Identity => self.identity,
            Coding::Gzip => self.gzip,
        }
    }
}

/// Reads every `Accept-Encoding` field of a request.
///
/// gzip (or its alias `x-gzip`, RFC 9110 §8.4.1.3) is chosen when its q-value
/// (listed, else that of `*`) is above 0 and not below identity's (listed,
/// else `*`'s); an identity that is not mentioned at all is acceptable but
/// never preferred over a listed gzip. Without the header, or with an empty
/// one, identity is sent (most clients that decode gzip say so). A coding
/// listed twice counts with its lowest q-value, so any `q=0` refuses it; an
/// entry whose q-value is malformed is ignored.
pub fn accept_encoding(headers: &HeaderMap) -> Accepted {
    let mut gzip: Option<u16> = None;
    let mut identity: Option<u16> = None;
    let mut any: Option<u16> = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().map(str::trim).unwrap_or_default();
            let Some(q) = qvalue(parts) else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            *slot = Some(slot.map_or(q, |old| old.min(q)));
        }
    }
    let gzip_q = gzip.or(any).unwrap_or(0);
    let identity_q = identity.or(any);
    let chosen = if gzip_q > 0 && identity_q.is_none_or(|id| id <= gzip_q) {
        Coding::Gzip
    } else {
        Coding::Identity
    };
    Accepted {
        chosen,
        gzip: gzip_q > 0,
        identity: identity_q != Some(0),
    }
}

/// The q-value among an entry's parameters, in thousandths (1000 when
/// absent); `None` when it is not an RFC 9110 §12.4.2 qvalue (`0`, `0.5`,
/// `1.000`, …).
fn qvalue<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
    }
    Some(q)
}

fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        // At most three digits: 9 * 100 + 9 * 10 + 9 fits easily.
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// An entity tag without its weakness indicator (`W/`).
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Whether the request's `If-None-Match` names `tag` (compared weakly) or
/// is `*`: for a representation served in one coding only (the CWT).
pub fn holds(headers: &HeaderMap, tag: &[u8]) -> bool {
    let tag = opaque(tag);
    headers.get_all(header::IF_NONE_MATCH).any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|t| t == b"*" || opaque(t) == tag)
    })
}

/// Which representation the request's `If-None-Match` names, if any: the
/// chosen one when one of its tags (compared weakly, `W/` ignored on both
/// sides, RFC 9110 §8.8.3.2) is `chosen_tag` or the field is `*`; otherwise
/// the other one when a tag is `other_tag` and the client accepts that
/// coding. A cache that stored both
/// sends both tags and is answered 304 with the tag of the one still valid
/// (RFC 9111 §4.3.4), so either tag must match.
pub fn held(
    headers: &HeaderMap,
    accepted: Accepted,
    chosen_tag: &[u8],
    other_tag: &[u8],
) -> Option<Coding> {
    let other = match accepted.chosen {
        Coding::Identity => Coding::Gzip,
        Coding::Gzip => Coding::Identity,
    };
    let (chosen_tag, other_tag) = (opaque(chosen_tag), opaque(other_tag));
    let mut other_matched = false;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        for tag in value.as_bytes().split(|b| *b == b',') {
            let tag = tag.trim_ascii();
            if tag == b"*" {
                return Some(accepted.chosen);
            }
            let tag = opaque(tag);
            if tag == chosen_tag {
                return Some(accepted.chosen);
            }
            other_matched |= tag == other_tag;
        }
    }
    (other_matched && accepted.allows(other)).then_some(other)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(name: HeaderName, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn chosen(values: &[&str]) -> Coding {
        accept_encoding(&headers(header::ACCEPT_ENCODING, values)).chosen
    }

    #[test]
    fn gzip_is_chosen_when_accepted_at_least_as_much_as_identity() {
        use Coding::{Gzip, Identity};
        for (values, want) in [
            (&[][..], Identity),
            (&[""], Identity),
            (&["gzip"], Gzip),
            (&["GZip"], Gzip),
            (&["x-gzip"], Gzip),
            (&["gzip, deflate, br"], Gzip),
            (&["br;q=1.0, gzip;q=0.8, *;q=0.1"], Gzip),
            (&["deflate", "gzip"], Gzip),
            (&["*"], Gzip),
            (&["gzip;q=0.5"], Gzip),
            (&["gzip;q=0.001"], Gzip),
            (&["gzip;q=0"], Identity),
            (&["gzip;Q=0.000"], Identity),
            (&["gzip ; q=0"], Identity),
            (&["gzip;q=0, *"], Identity),
            (&["*;q=0"], Identity),
            (&["*, gzip;q=0"], Identity),
            (&["gzip", "gzip;q=0"], Identity),
            (&["identity"], Identity),
            (&["deflate, br"], Identity),
            (&["gzip;q=0.5, identity"], Identity),
            (&["gzip;q=0.5, identity;q=0.5"], Gzip),
            (&["gzip;q=0.5, *;q=0.9"], Identity),
            (&["gzip, identity;q=0"], Gzip),
            (&["gzip;q=2"], Identity),
            (&["gzip;q=1.5"], Identity),
            (&["gzip;q=0.0001"], Identity),
            (&["gzip;q=abc"], Identity),
            (&["gzip;q="], Identity),
            (&["gzip;level=1"], Gzip),
        ] {
            assert_eq!(chosen(values), want, "{values:?}");
        }
    }

    #[test]
    fn refusals_of_identity_are_seen() {
        let a = |v: &str| accept_encoding(&headers(header::ACCEPT_ENCODING, &[v]));
        assert!(a("gzip").identity);
        assert!(!a("gzip, identity;q=0").identity);
        assert!(!a("gzip, *;q=0").identity);
        assert!(a("gzip, *;q=0, identity").identity);
        assert!(a("").identity && !a("").gzip);
    }

    fn media(values: &[&str]) -> Option<Media> {
        accept_media(&headers(header::ACCEPT, values))
    }

    #[test]
    fn the_jwt_is_sent_without_a_preference_and_the_cwt_when_preferred() {
        use Media::{Cwt, Jwt};
        for (values, want) in [
            // No preference: the JWT, as before CWT was served.
            (&[][..], Some(Jwt)),
            (&[""], Some(Jwt)),
            (&[" , "], Some(Jwt)),
            (&["*/*"], Some(Jwt)),
            (&["application/*"], Some(Jwt)),
            (
                &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
                Some(Jwt),
            ),
            (
                &["application/statuslist+jwt, application/statuslist+cwt"],
                Some(Jwt),
            ),
            (
                &["application/statuslist+cwt;q=0.5, application/statuslist+jwt;q=0.5"],
                Some(Jwt),
            ),
            // Asked for by name, alone or preferred.
            (&["application/statuslist+jwt"], Some(Jwt)),
            (&["application/statuslist+cwt"], Some(Cwt)),
            (&["Application/StatusList+CWT"], Some(Cwt)),
            (&["application/statuslist+cwt; charset=x"], Some(Cwt)),
            (
                &["application/statuslist+jwt;q=0.9, application/statuslist+cwt"],
                Some(Cwt),
            ),
            (&["application/statuslist+cwt, */*;q=0.1"], Some(Cwt)),
            (&["application/statuslist+cwt;q=0.2, */*;q=0.1"], Some(Cwt)),
            (&["application/statuslist+cwt;q=0.1, */*;q=0.2"], Some(Jwt)),
            (&["*/*", "application/statuslist+cwt"], Some(Cwt)),
            (&["application/statuslist+cwt, application/*"], Some(Cwt)),
            (&["application/statuslist+jwt, application/cwt"], Some(Jwt)),
            // The generic types: any JWT (or CWT) is acceptable.
            (&["application/jwt"], Some(Jwt)),
            (&["application/cwt"], Some(Cwt)),
            (&["application/cwt, application/jwt;q=0.5"], Some(Cwt)),
            // The specific range wins over the alias and the wildcards.
            (
                &["application/statuslist+jwt;q=0, application/jwt, application/cwt;q=0.1"],
                Some(Cwt),
            ),
            (&["*/*, application/statuslist+jwt;q=0"], Some(Cwt)),
            (
                &["application/*;q=0.5, application/statuslist+cwt;q=0"],
                Some(Jwt),
            ),
            (
                &[
                    "application/statuslist+cwt",
                    "application/statuslist+cwt;q=0",
                ],
                None,
            ),
            // Malformed q-values are ignored, not read as 1.
            (&["application/statuslist+cwt;q=2"], None),
            (
                &["application/statuslist+cwt;q=abc, application/statuslist+jwt;q=0.1"],
                Some(Jwt),
            ),
            // Neither allowed: 406.
            (&["application/json"], None),
            (&["text/*"], None),
            (&["application/statuslist+jwt;q=0"], None),
            (
                &["application/statuslist+jwt;q=0, application/statuslist+cwt;q=0"],
                None,
            ),
            (&["*/*;q=0"], None),
            (&["application/*;q=0, */*"], None),
            (&["nonsense"], None),
        ] {
            assert_eq!(media(values), want, "{values:?}");
        }
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        for (text, want) in [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.25", Some(250)),
            ("0.125", Some(125)),
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0.1234", None),
            ("01", None),
            ("", None),
            ("-0", None),
            ("0.-1", None),
        ] {
            assert_eq!(parse_qvalue(text), want, "{text}");
        }
    }

    #[test]
    fn if_none_match_names_the_one_cwt_tag() {
        let holds_it =
            |values: &[&str]| holds(&headers(header::IF_NONE_MATCH, values), b"W/\"1-2-cwt\"");
        assert!(!holds_it(&[]));
        assert!(holds_it(&["W/\"1-2-cwt\""]));
        assert!(holds_it(&["\"1-2-cwt\""]));
        assert!(holds_it(&["\"x\", W/\"1-2-cwt\""]));
        assert!(holds_it(&["\"x\"", "W/\"1-2-cwt\""]));
        assert!(holds_it(&["*"]));
        assert!(!holds_it(&["W/\"1-2\", W/\"1-2-gz\""]), "the JWT's tags");
        assert!(!holds_it(&["W/\"1-3-cwt\""]));
    }

    #[test]
    fn if_none_match_names_either_representation() {
        let gzip_first = Accepted {
            chosen: Coding::Gzip,
            gzip: true,
            identity: true,
        };
        let inm = |values: &[&str], accepted| {
            held(
                &headers(header::IF_NONE_MATCH, values),
                accepted,
                b"\"1-2-gz\"",
                b"\"1-2\"",
            )
        };
        assert_eq!(inm(&[], gzip_first), None);
        assert_eq!(inm(&["\"1-2-gz\""], gzip_first), Some(Coding::Gzip));
        assert_eq!(inm(&["W/\"1-2-gz\""], gzip_first), Some(Coding::Gzip));
        assert_eq!(inm(&["\"1-2\""], gzip_first), Some(Coding::Identity));
        assert_eq!(
            inm(&["\"1-2\", \"1-2-gz\""], gzip_first),
            Some(Coding::Gzip),
            "the chosen one first"
        );
        assert_eq!(
            inm(&["\"x\"", "\"1-2\""], gzip_first),
            Some(Coding::Identity)
        );
        assert_eq!(inm(&["*"], gzip_first), Some(Coding::Gzip));
        assert_eq!(inm(&["\"1-3\", \"1-2-gzip\""], gzip_first), None);
        let no_identity = Accepted {
            identity: false,
            ..gzip_first
        };
        assert_eq!(inm(&["\"1-2\""], no_identity), None);
        // Our tags are weak: the request's match with or without `W/`.
        let weak = |values: &[&str]| {
            held(
                &headers(header::IF_NONE_MATCH, values),
                gzip_first,
                b"W/\"1-2-gz\"",
                b"W/\"1-2\"",
            )
        };
        assert_eq!(weak(&["W/\"1-2-gz\""]), Some(Coding::Gzip));
        assert_eq!(weak(&["\"1-2-gz\""]), Some(Coding::Gzip));
        assert_eq!(weak(&["W/\"1-2\""]), Some(Coding::Identity));
        assert_eq!(weak(&["W/\"1-3\""]), None);
    }
}
