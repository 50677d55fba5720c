//! The entry listing (`GET /entries`), pure: its query parameters, the order
//! entries are listed in, the selection of one page out of two sorted
//! sources, and the pagination block of the answer.
//!
//! # The order
//!
//! Entries are listed by `updatedAt` (the time of the entry's last applied
//! status change, or its `createdAt` when it never changed), ties broken by
//! allocation order: an [`EntryKey`] is `(updated_at, seq)` where `seq`
//! numbers a client's entries of one list format in the order they were
//! allocated. Keys are unique, so the order is total and pages are stable
//! while nothing changes.
//!
//! # Why two sources
//!
//! Stores keep the entries that never changed implicitly: they are the
//! issued entries minus the changed ones, and since `createdAt` never goes
//! back within a client's entries their keys rise with `seq`. The changed
//! entries, few, are kept sorted by key. A page at any depth is then cut out
//! of the merge of the two without walking what comes before it ([`cut`]):
//! each source only has to answer "the key at rank r".

use std::fmt;

use super::ids::{IssuanceRef, ListRef};
use super::status::Status;

/// An entry's place in the listing order: its `updatedAt`, then its
/// allocation sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// `updatedAt`, unix seconds.
    pub updated_at: u64,
    /// The entry's allocation sequence number within its client and format.
    pub seq: u64,
}

/// The listing direction (`sort`), by [`EntryKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Most recently updated first (the default).
    #[default]
    Desc,
    /// Least recently updated first.
    Asc,
}

impl SortOrder {
    /// True when `a` is listed before `b`.
    pub fn before(self, a: EntryKey, b: EntryKey) -> bool {
        match self {
            SortOrder::Desc => a > b,
            SortOrder::Asc => a < b,
        }
    }

    /// The query-parameter spelling.
    pub const fn name(self) -> &'static str {
        match self {
            SortOrder::Desc => "desc",
            SortOrder::Asc => "asc",
        }
    }
}

/// A set of the statuses an entry can be listed with (VALID, INVALID,
/// SUSPENDED): the `status` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusSet(u8);

impl StatusSet {
    /// Every status: no filter.
    pub const ALL: StatusSet = StatusSet(0b111);

    /// The set holding `statuses` (the application-specific value is never
    /// listed: the service never sets it).
    pub fn of(statuses: &[Status]) -> StatusSet {
        StatusSet(statuses.iter().fold(0, |m, s| m | Self::bit(*s)))
    }

    /// The set as a mask: bit 0 VALID, bit 1 INVALID, bit 2 SUSPENDED.
    /// Never 0 for a set built by [`StatusSet::from_mask`] or the parser.
    pub const fn mask(self) -> u8 {
        self.0
    }

    /// The set of a mask; `None` for 0 or bits beyond the three statuses.
    pub const fn from_mask(mask: u8) -> Option<StatusSet> {
        if mask == 0 || mask > 0b111 {
            None
        } else {
            Some(StatusSet(mask))
        }
    }

    /// True when `status` is in the set.
    pub fn contains(self, status: Status) -> bool {
        self.0 & Self::bit(status) != 0
    }

    /// True when the set holds every status (nothing is filtered out).
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    fn bit(status: Status) -> u8 {
        match status {
            Status::Valid => 1,
            Status::Invalid => 2,
            Status::Suspended => 4,
            Status::ApplicationSpecific => 0,
        }
    }
}

/// The largest `limit`.
pub const MAX_LIMIT: u32 = 100;
/// The `limit` when none is given.
pub const DEFAULT_LIMIT: u32 = 10;

/// The parsed query of `GET /entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFilter {
    /// `page`, 1-based.
    pub page: u64,
    /// `limit`, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// `status`: the statuses listed.
    pub statuses: StatusSet,
    /// `ref`: only the entries bound to this ref.
    pub issuance_ref: Option<IssuanceRef>,
    /// `uri`: only the entries of this list.
    pub list: Option<ListRef>,
    /// `updatedSince`: only entries with `updatedAt` at or after this.
    pub updated_since: Option<u64>,
    /// `updatedUntil`: only entries with `updatedAt` at or before this.
    pub updated_until: Option<u64>,
    /// `sort`.
    pub order: SortOrder,
}

/// Why a query of `GET /entries` was refused; the text names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter the endpoint does not know.
    #[error("Unknown query parameter '{0}'")]
    Unknown(String),
    /// A parameter given twice.
    #[error("Query parameter '{0}' is given more than once")]
    Repeated(&'static str),
    /// A parameter whose value is malformed or out of range.
    #[error("Query parameter '{param}' {expected}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// The parameter names, in the spelling of the query.
const PARAMS: [&str; 8] = [
    "page",
    "limit",
    "status",
    "ref",
    "uri",
    "updatedSince",
    "updatedUntil",
    "sort",
];

/// How much of an unknown parameter's name an error text repeats.
const ECHO_MAX: usize = 64;

impl EntryFilter {
    /// Reads the query string of `GET /entries` (without the `?`),
    /// percent-decoding it; `uri` must be a list URI under
    /// `public_base_url`.
    ///
    /// # Errors
    /// [`QueryError`] naming the first parameter that is unknown, repeated
    /// or malformed.
    pub fn parse(query: &str, public_base_url: &str) -> Result<Self, QueryError> {
        let mut given: [Option<String>; PARAMS.len()] = Default::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some(at) = PARAMS.iter().position(|p| *p == name) else {
                return Err(QueryError::Unknown(echo(&name)));
            };
            if given[at].replace(value.into_owned()).is_some() {
                return Err(QueryError::Repeated(PARAMS[at]));
            }
        }
        let [page, limit, status, ref_, uri, since, until, sort] = given;
        let page = match page {
            None => 1,
            Some(v) => number(&v).filter(|p| *p >= 1).ok_or(QueryError::Invalid {
                param: "page",
                expected: "must be a whole number of at least 1",
            })?,
        };
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(v) => number(&v)
                .and_then(|l| u32::try_from(l).ok())
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or(QueryError::Invalid {
                    param: "limit",
                    expected: "must be a whole number from 1 to 100",
                })?,
        };
        // The first entry of the page must be addressable.
        if (page - 1).checked_mul(u64::from(limit)).is_none() {
            return Err(QueryError::Invalid {
                param: "page",
                expected: "is too large",
            });
        }
        let statuses = match status {
            None => StatusSet::ALL,
            Some(v) => parse_statuses(&v).ok_or(QueryError::Invalid {
                param: "status",
                expected: "must be a comma-separated list of VALID, INVALID and SUSPENDED",
            })?,
        };
        let issuance_ref = ref_
            .map(|v| IssuanceRef::parse(&v))
            .transpose()
            .map_err(|_| QueryError::Invalid {
                param: "ref",
                expected: "must be 1 to 128 printable ASCII characters",
            })?;
        let list = uri
            .map(|v| ListRef::parse_uri(public_base_url, &v))
            .transpose()
            .map_err(|_| QueryError::Invalid {
                param: "uri",
                expected: "must be a status list URI of this service",
            })?;
        let time = |v: Option<String>, param| {
            v.map(|v| {
                number(&v).ok_or(QueryError::Invalid {
                    param,
                    expected: "must be a time in whole unix seconds",
                })
            })
            .transpose()
        };
        let updated_since = time(since, "updatedSince")?;
        let updated_until = time(until, "updatedUntil")?;
        if let (Some(s), Some(u)) = (updated_since, updated_until)
            && s > u
        {
            return Err(QueryError::Invalid {
                param: "updatedSince",
                expected: "must not be after updatedUntil",
            });
        }
        let order = match sort.as_deref() {
            None | Some("desc") => SortOrder::Desc,
            Some("asc") => SortOrder::Asc,
            Some(_) => {
                return Err(QueryError::Invalid {
                    param: "sort",
                    expected: "must be desc or asc",
                });
            }
        };
        Ok(EntryFilter {
            page,
            limit,
            statuses,
            issuance_ref,
            list,
            updated_since,
            updated_until,
            order,
        })
    }

    /// How many entries come before the page (checked not to overflow by
    /// [`EntryFilter::parse`]).
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(u64::from(self.limit))
    }
}

/// A whole number as the query spells it: ASCII digits only (no sign, no
/// spaces), at most 19 of them so it always fits.
fn number(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn parse_statuses(v: &str) -> Option<StatusSet> {
    let mut mask = 0;
    for name in v.split(',') {
        mask |= match name {
            "VALID" => 1,
            "INVALID" => 2,
            "SUSPENDED" => 4,
            _ => return None,
        };
    }
    StatusSet::from_mask(mask)
}

/// An unknown parameter's name as an error text may repeat it: printable
/// ASCII only, shortened.
fn echo(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(ECHO_MAX)
        .collect()
}

/// Where a page starts in the merge of two sources.
///
/// `a` and `b` each list their entries sorted in `order` (`a_key(r)` and
/// `b_key(r)` give the key at rank `r`, 0-based, of `a_len` and `b_len`
/// entries), no key in both. Returns `(i, j)` with `i + j = min(offset,
/// a_len + b_len)`: the first `offset` entries of the merge are the first
/// `i` of `a` and the first `j` of `b`. Asks for O(log) keys, so a page deep
/// in a large source costs no walk.
///
/// # Errors
/// The first error a key lookup returns.
pub fn cut<E>(
    offset: u64,
    order: SortOrder,
    a_len: u64,
    b_len: u64,
    mut a_key: impl FnMut(u64) -> Result<EntryKey, E>,
    mut b_key: impl FnMut(u64) -> Result<EntryKey, E>,
) -> Result<(u64, u64), E> {
    let offset = offset.min(a_len.saturating_add(b_len));
    // i ranges over [lo, hi]; for i < hi, b's entry at offset - i - 1
    // exists. "Enough taken from a" (a's entry at i comes after b's at
    // offset - i - 1) is false then true as i grows: find where it turns.
    let (mut lo, mut hi) = (offset.saturating_sub(b_len), offset.min(a_len));
    let top = hi;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let enough = order.before(b_key(offset - mid - 1)?, a_key(mid)?);
        if enough {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    debug_assert!(lo <= top);
    Ok((lo, offset - lo))
}

/// The merge of two runs each sorted in `order`, cut to `limit` entries.
pub fn merge<T>(
    order: SortOrder,
    a: impl IntoIterator<Item = (EntryKey, T)>,
    b: impl IntoIterator<Item = (EntryKey, T)>,
    limit: usize,
) -> Vec<(EntryKey, T)> {
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    let mut out = Vec::with_capacity(limit);
    while out.len() < limit {
        let take_a = match (a.peek(), b.peek()) {
            (Some((ka, _)), Some((kb, _))) => order.before(*ka, *kb),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

/// The `pagination` block of a `GET /entries` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// The page asked for.
    pub current_page: u64,
    /// Entries matching the filter, on every page.
    pub total_items: u64,
    /// Pages of `limit` entries (0 when nothing matches).
    pub total_pages: u64,
    /// Entries per page.
    pub limit: u32,
    /// A page before this one exists.
    pub has_previous: bool,
    /// A page after this one exists.
    pub has_next: bool,
}

impl Pagination {
    /// The block for `page` of `limit` entries out of `total`.
    pub fn new(page: u64, limit: u32, total: u64) -> Self {
        let total_pages = total.div_ceil(u64::from(limit.max(1)));
        Pagination {
            current_page: page,
            total_items: total,
            total_pages,
            limit,
            has_previous: page > 1,
            has_next: page < total_pages,
        }
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [Status::Valid, Status::Invalid, Status::Suspended]
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Status::name)
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://crs.example";

    fn parse(q: &str) -> Result<EntryFilter, QueryError> {
        EntryFilter::parse(q, BASE)
    }

    #[test]
    fn defaults() {
        let f = parse("").unwrap();
        assert_eq!(
            f,
            EntryFilter {
                page: 1,
                limit: 10,
                statuses: StatusSet::ALL,
                issuance_ref: None,
                list: None,
                updated_since: None,
                updated_until: None,
                order: SortOrder::Desc,
            }
        );
        assert_eq!(f.offset(), 0);
    }

    #[test]
    fn every_parameter() {
        let f = parse(
            "page=3&limit=25&status=INVALID,SUSPENDED&ref=order%2042%2B1&uri=https%3A%2F%2Fcrs.example%2Ft%2FA671FED3E9AD&updatedSince=10&updatedUntil=20&sort=asc",
        )
        .unwrap();
        assert_eq!(f.page, 3);
        assert_eq!(f.limit, 25);
        assert_eq!(f.offset(), 50);
        assert_eq!(
            f.statuses,
            StatusSet::of(&[Status::Invalid, Status::Suspended])
        );
        assert_eq!(f.issuance_ref.unwrap().as_str(), "order 42+1");
        assert_eq!(
            f.list.unwrap().uri(BASE),
            "https://crs.example/t/A671FED3E9AD"
        );
        assert_eq!((f.updated_since, f.updated_until), (Some(10), Some(20)));
        assert_eq!(f.order, SortOrder::Asc);
    }

    #[test]
    fn bad_queries_name_their_parameter() {
        for (q, param) in [
            ("pag=1", "'pag'"),
            ("page=0", "'page'"),
            ("page=-1", "'page'"),
            ("page=1.5", "'page'"),
            ("page=", "'page'"),
            ("page=99999999999999999999", "'page'"),
            ("page=1&page=2", "'page'"),
            ("page=18446744073709551&limit=100", "'page'"),
            ("limit=0", "'limit'"),
            ("limit=101", "'limit'"),
            ("limit=+5", "'limit'"),
            ("status=valid", "'status'"),
            ("status=", "'status'"),
            ("status=VALID,", "'status'"),
            ("status=REVOKED", "'status'"),
            ("ref=", "'ref'"),
            ("ref=%09", "'ref'"),
            ("uri=https%3A%2F%2Fevil.example%2Ft%2FA671FED3E9AD", "'uri'"),
            ("updatedSince=yesterday", "'updatedSince'"),
            ("updatedUntil=-3", "'updatedUntil'"),
            ("updatedSince=5&updatedUntil=4", "'updatedSince'"),
            ("sort=DESC", "'sort'"),
            ("sort=up", "'sort'"),
        ] {
            let err = parse(q).unwrap_err().to_string();
            assert!(err.contains(param), "{q}: {err}");
        }
        let long = format!("{}=1", "x".repeat(500));
        assert!(parse(&long).unwrap_err().to_string().len() < 120);
    }

    #[test]
    fn status_sets() {
        assert!(StatusSet::ALL.is_all());
        let s = parse("status=SUSPENDED,VALID,VALID").unwrap().statuses;
        assert!(s.contains(Status::Valid) && s.contains(Status::Suspended));
        assert!(!s.contains(Status::Invalid));
        assert_eq!(s.to_string(), "VALID,SUSPENDED");
        assert_eq!(StatusSet::from_mask(0), None);
        assert_eq!(StatusSet::from_mask(8), None);
        assert_eq!(StatusSet::from_mask(5), Some(s));
    }

    #[test]
    fn pagination_blocks() {
        assert_eq!(
            Pagination::new(1, 10, 0),
            Pagination {
                current_page: 1,
                total_items: 0,
                total_pages: 0,
                limit: 10,
                has_previous: false,
                has_next: false
            }
        );
        let p = Pagination::new(2, 10, 21);
        assert_eq!((p.total_pages, p.has_previous, p.has_next), (3, true, true));
        let p = Pagination::new(3, 10, 21);
        assert_eq!(
            (p.total_pages, p.has_previous, p.has_next),
            (3, true, false)
        );
        let p = Pagination::new(9, 10, 21);
        assert_eq!((p.has_previous, p.has_next), (true, false));
    }

    fn key(updated_at: u64, seq: u64) -> EntryKey {
        EntryKey { updated_at, seq }
    }

    /// The cut agrees with merging everything and counting, for small
    /// sources in both orders at every offset.
    #[test]
    fn cuts_match_a_full_merge() {
        let a: Vec<EntryKey> = [(1, 0), (1, 2), (3, 3), (5, 6), (9, 7)]
            .map(|(t, s)| key(t, s))
            .to_vec();
        let b: Vec<EntryKey> = [(0, 9), (1, 1), (4, 4), (5, 5), (9, 8), (10, 10)]
            .map(|(t, s)| key(t, s))
            .to_vec();
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sorted = |v: &[EntryKey]| {
                let mut v = v.to_vec();
                v.sort();
                if order == SortOrder::Desc {
                    v.reverse();
                }
                v
            };
            let (a, b) = (sorted(&a), sorted(&b));
            for offset in 0..=13 {
                let (i, j) = cut::<()>(
                    offset,
                    order,
                    a.len() as u64,
                    b.len() as u64,
                    |r| Ok(a[r as usize]),
                    |r| Ok(b[r as usize]),
                )
                .unwrap();
                assert_eq!(i + j, offset.min(11));
                let mut all: Vec<EntryKey> = a.iter().chain(b.iter()).copied().collect();
                all.sort();
                if order == SortOrder::Desc {
                    all.reverse();
                }
                let first: Vec<EntryKey> = all.iter().take(offset as usize).copied().collect();
                let mut got: Vec<EntryKey> = a[..i as usize]
                    .iter()
                    .chain(b[..j as usize].iter())
                    .copied()
                    .collect();
                got.sort();
                if order == SortOrder::Desc {
                    got.reverse();
                }
                assert_eq!(got, first, "{order:?} at {offset}");
                let page = merge(
                    order,
                    a[i as usize..].iter().map(|k| (*k, ())),
                    b[j as usize..].iter().map(|k| (*k, ())),
                    3,
                );
                let want: Vec<EntryKey> =
                    all.iter().skip(offset as usize).take(3).copied().collect();
                assert_eq!(page.iter().map(|(k, ())| *k).collect::<Vec<_>>(), want);
            }
        }
    }
}
