//! A list's bytes compressed in independent segments, so that re-publishing
//! it after a change compresses only the segments whose bytes changed.
//!
//! The raw bytes are cut into [`SEGMENT_BYTES`] pieces. Each piece is
//! compressed on its own into raw DEFLATE (RFC 1951) blocks, none of them
//! final, ended by a sync flush (an empty stored block), so each piece ends
//! on a byte boundary and refers to no byte of another piece. Concatenated
//! and closed by one empty final block, the pieces are one valid DEFLATE
//! stream; the zlib (RFC 1950) and GZIP (RFC 1952) wrappers add a header and
//! a checksum of the whole, which is combined from the pieces' checksums
//! (Adler-32 and CRC-32 both combine from the parts and the second part's
//! length). Any inflater reads the result; no decoder needs to know it was
//! made in pieces.
//!
//! Compression is zlib-rs, in two passes. A segment is first compressed with
//! the run-length strategy (matches at distance 1 only): status lists are
//! mostly zero bytes with scattered non-zero ones, runs of one byte value
//! are nearly all there is to find, and the run-length search is 20–100×
//! faster than zlib level 9's chain search on such data, so a change is
//! published within a fraction of a millisecond. On sparse lists it is
//! ~14 % larger than level 9, which finds matches spanning a non-zero byte
//! and both runs around it, at ~100 ns per input byte (3 ms per segment on a
//! 1 % list; no setting of zlib's or libdeflate's search gets within 5 % of
//! level 9 there in under 1 ms, measured in `benches/tokens.rs`).
//! [`CompressedList::optimized`] is the second pass, run off the request
//! path once a list has settled: each segment not yet optimized is
//! compressed at level 9 and keeps the smaller of its two encodings (the
//! run-length one is smaller on denser lists, where level 9 is not even
//! tried, see [`DENSE_RATIO`]), so a published list ends within a few per
//! cent of zlib level 9 of the whole list, or below it.
//!
//! [`CompressedList::update`] is the incremental step: it compares each
//! piece's bytes with the previous version's (no trust in change
//! notifications) and compresses again only those that differ; the pieces
//! it keeps keep their optimized encoding.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

/// Raw bytes per segment: 32 KiB, i.e. 131,072 two-bit entries. Smaller
/// segments re-compress faster after a change but each costs one more block
/// header and sync marker (~30–60 bytes); at 32 KiB a 1,048,576-entry 2-bit
/// list is 8 segments and one segment compresses in well under 0.1 ms.
pub const SEGMENT_BYTES: usize = 32 * 1024;

/// Level 9 is tried on a segment only while its run-length encoding is
/// under 1/`DENSE_RATIO` of its raw bytes. Measured on 2-bit lists of
/// 131,072 entries: level 9 is 3-9 % smaller where the run-length encoding
/// is 4-17 % of the raw bytes (0.5-3 % of entries set), even at 21 %, and
/// 3-11 % larger from 24 % on (5-10 % set), where trying it would cost ~9 ms
/// per segment for nothing.
const DENSE_RATIO: usize = 5;

/// An empty final block with fixed Huffman codes (BFINAL = 1, BTYPE = 01,
/// end-of-block): closes the stream after the last sync-flushed segment.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// zlib header: CM = 8 (DEFLATE), CINFO = 7 (32 KiB window), no dictionary,
/// FLEVEL = 0 (informative only, RFC 1950; segments are of either pass),
/// FCHECK so that the pair is a multiple of 31.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];

/// GZIP header: magic, CM = 8, no flags, no modification time, no extra
/// flags, OS = 255 (unknown), as flate2's encoder writes it.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// One compressed segment.
#[derive(Clone, PartialEq, Eq)]
struct Segment {
    /// The segment's raw bytes, kept to tell whether the next version's bytes
    /// are the same.
    raw: Box<[u8]>,
    /// Raw DEFLATE, non-final blocks, ending byte-aligned after a sync flush.
    deflate: Box<[u8]>,
    /// Adler-32 of `raw`.
    adler: u32,
    /// CRC-32 of `raw`.
    crc: u32,
    /// Whether `deflate` is the smaller of the run-length and the level-9
    /// encoding (see [`CompressedList::optimized`]), or only the run-length
    /// one.
    optimized: bool,
}

/// A list's raw bytes, compressed segment by segment; shared segments are
/// reference-counted so that an update copies none it keeps.
///
/// Invariant: the segments' raw bytes, in order, are the whole list, every
/// segment but the last exactly [`SEGMENT_BYTES`] long.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CompressedList {
    segments: Vec<Arc<Segment>>,
    raw_len: usize,
}

impl std::fmt::Debug for CompressedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressedList")
            .field("raw_len", &self.raw_len)
            .field("segments", &self.segments.len())
            .field("deflate_len", &self.deflate_len())
            .finish()
    }
}

/// What an [`CompressedList::update`] or [`CompressedList::optimized`] did,
/// for logs and benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateStats {
    /// Segments taken over from the previous version unchanged.
    pub reused: usize,
    /// Segments compressed again.
    pub compressed: usize,
    /// Of those, how many [`CompressedList::optimized`] made smaller (the
    /// others keep their run-length encoding).
    pub smaller: usize,
}

impl CompressedList {
    /// Compresses every segment of `raw`.
    pub fn new(raw: &[u8]) -> Self {
        Self::default().update(raw).0
    }

    /// The list for `raw`, reusing each segment of `self` whose raw bytes
    /// equal the new ones at the same place and compressing the others.
    pub fn update(&self, raw: &[u8]) -> (Self, UpdateStats) {
        let mut stats = UpdateStats::default();
        let mut deflater = Deflater::new(Pass::Fast);
        let segments = raw
            .chunks(SEGMENT_BYTES)
            .enumerate()
            .map(|(i, chunk)| match self.segments.get(i) {
                Some(old) if *old.raw == *chunk => {
                    stats.reused += 1;
                    old.clone()
                }
                _ => {
                    stats.compressed += 1;
                    Arc::new(deflater.segment(chunk))
                }
            })
            .collect();
        let list = CompressedList {
            segments,
            raw_len: raw.len(),
        };
        (list, stats)
    }

    /// Whether every segment is optimized: [`CompressedList::optimized`]
    /// would change nothing.
    pub fn is_optimized(&self) -> bool {
        self.segments.iter().all(|s| s.optimized)
    }

    /// The list with every segment not yet optimized compressed again at
    /// zlib level 9 (unless dense, see [`DENSE_RATIO`]), each keeping the
    /// smaller of its two encodings; `None` when every segment already is. Costs up to ~3 ms per 32 KiB segment
    /// (sparse lists are the slow case), so it is run off the request path.
    pub fn optimized(&self) -> Option<(Self, UpdateStats)> {
        if self.is_optimized() {
            return None;
        }
        let mut stats = UpdateStats::default();
        let mut deflater = Deflater::new(Pass::Best);
        let segments = self
            .segments
            .iter()
            .map(|old| {
                if old.optimized {
                    stats.reused += 1;
                    return old.clone();
                }
                stats.compressed += 1;
                if old.deflate.len() * DENSE_RATIO >= old.raw.len() {
                    // Dense: level 9 would not be smaller, only slower.
                    return Arc::new(Segment {
                        optimized: true,
                        ..Segment::clone(old)
                    });
                }
                let best = deflater.segment(&old.raw);
                if best.deflate.len() < old.deflate.len() {
                    stats.smaller += 1;
                    Arc::new(best)
                } else {
                    Arc::new(Segment {
                        optimized: true,
                        ..Segment::clone(old)
                    })
                }
            })
            .collect();
        let list = CompressedList {
            segments,
            raw_len: self.raw_len,
        };
        Some((list, stats))
    }

    /// The length of the DEFLATE data of all segments (what [`Self::zlib`]
    /// holds, but its 8 bytes of header and trailer).
    pub fn compressed_len(&self) -> usize {
        self.deflate_len() + FINAL_BLOCK.len()
    }

    /// The raw bytes of the list, joined from its segments.
    pub fn raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw_len);
        for s in &self.segments {
            out.extend_from_slice(&s.raw);
        }
        out
    }

    /// The number of raw bytes the list holds.
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// The number of segments.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// How many segments `self` took over from `other` (the same segment in
    /// memory at the same place), i.e. did not compress again.
    pub fn shared_segments(&self, other: &CompressedList) -> usize {
        self.segments
            .iter()
            .zip(&other.segments)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }

    /// Bytes held on the heap (raw copies and compressed segments), for
    /// cache budgets.
    pub fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.raw.len() + s.deflate.len() + std::mem::size_of::<Segment>())
            .sum::<usize>()
            + self.segments.capacity() * std::mem::size_of::<Arc<Segment>>()
    }

    fn deflate_len(&self) -> usize {
        self.segments.iter().map(|s| s.deflate.len()).sum()
    }

    /// The zlib (RFC 1950) stream of the list.
    pub fn zlib(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.deflate_len() + ZLIB_HEADER.len() + 6);
        out.extend_from_slice(&ZLIB_HEADER);
        self.deflate_into(&mut out);
        let adler = self.segments.iter().fold(1, |acc, s| {
            zlib_rs::adler32::adler32_combine(acc, s.adler, s.raw.len() as u64)
        });
        out.extend_from_slice(&adler.to_be_bytes());
        out
    }

    /// The GZIP (RFC 1952) member of the list.
    pub fn gzip(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.deflate_len() + GZIP_HEADER.len() + 10);
        out.extend_from_slice(&GZIP_HEADER);
        self.deflate_into(&mut out);
        let crc = self.segments.iter().fold(0, |acc, s| {
            zlib_rs::crc32::crc32_combine(acc, s.crc, s.raw.len() as u64)
        });
        out.extend_from_slice(&crc.to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952): truncation intended.
        out.extend_from_slice(&(self.raw_len as u32).to_le_bytes());
        out
    }

    /// The IETF `lst` value: base64url without padding of [`Self::zlib`].
    pub fn lst(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.zlib())
    }

    /// The W3C `encodedList` value: multibase `u` + base64url without padding
    /// of [`Self::gzip`].
    pub fn encoded_list(&self) -> String {
        let gz = self.gzip();
        let mut out = String::with_capacity(1 + gz.len().div_ceil(3) * 4);
        out.push('u');
        URL_SAFE_NO_PAD.encode_string(gz, &mut out);
        out
    }

    fn deflate_into(&self, out: &mut Vec<u8>) {
        for s in &self.segments {
            out.extend_from_slice(&s.deflate);
        }
        out.extend_from_slice(&FINAL_BLOCK);
    }
}

/// Which encoding a [`Deflater`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Run-length strategy: fast, for publishing a change at once.
    Fast,
    /// Level 9, default strategy: the size zlib's best search reaches.
    Best,
}

/// One zlib-rs compressor, reset between the segments of one update instead
/// of being allocated for each.
struct Deflater {
    pass: Pass,
    state: Option<Deflate>,
}

impl Deflater {
    fn new(pass: Pass) -> Self {
        Deflater { pass, state: None }
    }

    fn segment(&mut self, raw: &[u8]) -> Segment {
        let pass = self.pass;
        let deflate = match &mut self.state {
            Some(d) => {
                d.reset();
                d
            }
            none => none.insert(Deflate::new_with_config(DeflateConfig {
                level: 9,
                method: Method::Deflated,
                // Negative: raw DEFLATE, no zlib header or trailer.
                window_bits: -15,
                mem_level: 8,
                strategy: match pass {
                    Pass::Fast => Strategy::Rle,
                    Pass::Best => Strategy::Default,
                },
            })),
        };
        let compressed = sync_flushed(deflate, raw).unwrap_or_else(|| stored(raw));
        Segment {
            raw: raw.into(),
            deflate: compressed.into_boxed_slice(),
            adler: zlib_rs::adler32::adler32(1, raw),
            crc: zlib_rs::crc32::crc32(0, raw),
            optimized: pass == Pass::Best,
        }
    }
}

/// `raw` compressed and sync-flushed; `None` if zlib-rs reports an error
/// (it has no reason to with this configuration and output room).
fn sync_flushed(deflate: &mut Deflate, raw: &[u8]) -> Option<Vec<u8>> {
    // Room for the run-length encoding of nearly anything; grown if not.
    let mut out = vec![0u8; raw.len() + raw.len() / 8 + 64];
    for _ in 0..16 {
        let consumed = usize::try_from(deflate.total_in()).ok()?;
        let written = usize::try_from(deflate.total_out()).ok()?;
        deflate
            .compress(
                raw.get(consumed..)?,
                out.get_mut(written..)?,
                DeflateFlush::SyncFlush,
            )
            .ok()?;
        let written = usize::try_from(deflate.total_out()).ok()?;
        // A sync flush is complete once the call returns with output room
        // left (zlib's contract).
        if usize::try_from(deflate.total_in()).ok()? == raw.len() && written < out.len() {
            out.truncate(written);
            return Some(out);
        }
        out.resize(out.len() * 2, 0);
    }
    None
}

/// `raw` as stored (uncompressed) DEFLATE blocks, non-final, starting and
/// ending on a byte boundary: the valid fallback if compression fails.
fn stored(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 0xffff * 5 + 5);
    for block in raw.chunks(0xffff) {
        // BFINAL = 0, BTYPE = 00, then padding to the byte boundary.
        out.push(0);
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate_zlib(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| if i % 97 == 0 { (i % 251) as u8 } else { 0 })
            .collect()
    }

    #[test]
    fn segments_join_into_one_valid_stream() {
        for len in [
            0,
            1,
            100,
            SEGMENT_BYTES - 1,
            SEGMENT_BYTES,
            SEGMENT_BYTES + 1,
            3 * SEGMENT_BYTES + 17,
        ] {
            let raw = sample(len);
            let list = CompressedList::new(&raw);
            assert_eq!(list.segments(), len.div_ceil(SEGMENT_BYTES));
            assert_eq!(inflate_zlib(&list.zlib()), raw, "zlib, {len} bytes");
            let mut gz = Vec::new();
            flate2::read::GzDecoder::new(&list.gzip()[..])
                .read_to_end(&mut gz)
                .unwrap();
            assert_eq!(gz, raw, "gzip, {len} bytes");
        }
    }

    #[test]
    fn an_update_compresses_only_the_changed_segment() {
        let mut raw = sample(4 * SEGMENT_BYTES + 5);
        let first = CompressedList::new(&raw);
        raw[2 * SEGMENT_BYTES + 7] ^= 0x40;
        let (second, stats) = first.update(&raw);
        assert_eq!(
            stats,
            UpdateStats {
                reused: 4,
                compressed: 1,
                smaller: 0
            }
        );
        assert_eq!(inflate_zlib(&second.zlib()), raw);
        assert_eq!(second, CompressedList::new(&raw), "same as from scratch");
        // A longer list (capacity grown) compresses the changed tail.
        raw.extend_from_slice(&[1; 100]);
        let (third, stats) = second.update(&raw);
        assert_eq!((stats.reused, stats.compressed), (4, 1));
        assert_eq!(inflate_zlib(&third.zlib()), raw);
    }

    /// A 1 %-set 2-bit list: sparse, where level 9 beats the run-length
    /// encoding.
    fn sparse(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(25) {
                    1 << (2 * (x / 25 % 4))
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn optimizing_shrinks_sparse_segments_and_keeps_the_stream_valid() {
        let raw = sparse(3 * SEGMENT_BYTES + 100);
        let fast = CompressedList::new(&raw);
        assert!(!fast.is_optimized());
        let (best, stats) = fast.optimized().unwrap();
        assert_eq!((stats.reused, stats.compressed), (0, 4));
        assert!(stats.smaller >= 3, "the full segments at least: {stats:?}");
        assert!(best.is_optimized());
        assert!(best.optimized().is_none(), "nothing left to do");
        assert!(
            best.compressed_len() * 100 < fast.compressed_len() * 95,
            "{} vs {}",
            best.compressed_len(),
            fast.compressed_len()
        );
        assert_eq!(inflate_zlib(&best.zlib()), raw);
        let mut gz = Vec::new();
        flate2::read::GzDecoder::new(&best.gzip()[..])
            .read_to_end(&mut gz)
            .unwrap();
        assert_eq!(gz, raw);
        // Dense data where the run-length encoding is the smaller keeps it.
        let dense: Vec<u8> = (0..SEGMENT_BYTES).map(|i| (i % 7 == 0) as u8).collect();
        let fast = CompressedList::new(&dense);
        let (best, _) = fast.optimized().unwrap();
        assert!(best.compressed_len() <= fast.compressed_len());
        assert_eq!(inflate_zlib(&best.zlib()), dense);
    }

    #[test]
    fn an_update_keeps_the_optimized_segments_it_does_not_change() {
        let mut raw = sparse(4 * SEGMENT_BYTES);
        let (best, _) = CompressedList::new(&raw).optimized().unwrap();
        raw[SEGMENT_BYTES + 3] ^= 0x10;
        let (next, stats) = best.update(&raw);
        assert_eq!((stats.reused, stats.compressed), (3, 1));
        assert!(!next.is_optimized());
        let (again, stats) = next.optimized().unwrap();
        assert_eq!((stats.reused, stats.compressed), (3, 1));
        assert_eq!(inflate_zlib(&again.zlib()), raw);
        assert_eq!(again.shared_segments(&best), 3);
    }

    #[test]
    fn the_stored_fallback_is_valid_deflate() {
        let raw = sample(70_000);
        let mut zlib = ZLIB_HEADER.to_vec();
        zlib.extend_from_slice(&stored(&raw));
        zlib.extend_from_slice(&FINAL_BLOCK);
        zlib.extend_from_slice(&zlib_rs::adler32::adler32(1, &raw).to_be_bytes());
        assert_eq!(inflate_zlib(&zlib), raw);
    }
}
