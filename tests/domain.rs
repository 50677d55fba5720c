//! The pure core against the standards' own examples, by hand-computed bit
//! positions, and by property tests.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde::Deserialize;
use statuslist::domain::codec::{
    self, CodecError, DEFAULT_DECODE_LIMIT, decode_bitstring, decode_lst, encode_bitstring,
    encode_lst,
};
use statuslist::domain::{Allocator, AllocatorKey, Bits, Layout, StatusList};

#[derive(Deserialize)]
struct IetfVectors {
    vectors: Vec<IetfVector>,
}

#[derive(Deserialize)]
struct IetfVector {
    name: String,
    bits: u8,
    size: u64,
    statuses: BTreeMap<String, u8>,
    lst: String,
}

#[derive(Deserialize)]
struct W3cVectors {
    vectors: Vec<W3cVector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct W3cVector {
    name: String,
    size: u64,
    status_size: u8,
    statuses: BTreeMap<String, u8>,
    encoded_list: String,
}

fn reference(name: &str) -> String {
    let path = format!("{}/tests/reference/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn statuses(map: &BTreeMap<String, u8>) -> BTreeMap<u64, u8> {
    map.iter()
        .map(|(k, v)| (k.parse::<u64>().unwrap(), *v))
        .collect()
}

/// Every entry of `list` equals `expected` where listed and 0 elsewhere.
fn assert_statuses(list: &StatusList, expected: &BTreeMap<u64, u8>, name: &str) {
    let nonzero: BTreeMap<u64, u8> = list.nonzero().collect();
    let expected_nonzero: BTreeMap<u64, u8> = expected
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(nonzero, expected_nonzero, "{name}: decoded statuses");
    for (idx, value) in expected {
        assert_eq!(list.get(*idx).unwrap(), *value, "{name}: entry {idx}");
    }
}

/// Inflates zlib data with miniz_oxide: a decoder that shares no code with
/// the zlib-rs encoder, as a verifier's would not.
fn independent_unzlib(data: &[u8]) -> Vec<u8> {
    miniz_oxide::inflate::decompress_to_vec_zlib(data).expect("miniz_oxide inflates our zlib")
}

/// Conformance is that decoders read the statuses, not that our bytes equal
/// the draft's examples (which C zlib level 9 made): every vector decodes to
/// its statuses, and our encoding of the same statuses decodes back exactly,
/// with our decoder and an independent one.
#[test]
fn ietf_vectors_decode_to_their_statuses_and_ours_decode_back() {
    let file: IetfVectors = serde_json::from_str(&reference("ietf-token-status-list-vectors.json"))
        .expect("vectors parse");
    assert_eq!(
        file.vectors.len(),
        6,
        "all of the draft's vectors are present"
    );
    for v in &file.vectors {
        let bits = Bits::try_from(v.bits).unwrap();
        let expected = statuses(&v.statuses);
        let mut list = StatusList::new(Layout::Ietf, bits, v.size).unwrap();
        for (idx, value) in &expected {
            list.set(*idx, *value).unwrap();
        }
        let ours = encode_lst(list.as_bytes());
        assert_eq!(
            decode_lst(&ours, DEFAULT_DECODE_LIMIT).unwrap(),
            list.as_bytes(),
            "{}: our lst decodes back",
            v.name
        );
        let zlib = URL_SAFE_NO_PAD.decode(&ours).unwrap();
        assert_eq!(
            independent_unzlib(&zlib),
            list.as_bytes(),
            "{}: our lst, independent decoder",
            v.name
        );
        // And the vector's own bytes through the independent decoder too.
        let theirs = URL_SAFE_NO_PAD.decode(&v.lst).unwrap();
        assert_eq!(independent_unzlib(&theirs), list.as_bytes(), "{}", v.name);

        let raw = decode_lst(&v.lst, DEFAULT_DECODE_LIMIT).unwrap();
        let decoded = StatusList::from_decoded(Layout::Ietf, bits, raw).unwrap();
        assert_eq!(decoded.len(), v.size, "{}: decoded size", v.name);
        assert_statuses(&decoded, &expected, &v.name);
    }
}

#[test]
fn w3c_vectors_decode_to_their_statuses() {
    let file: W3cVectors =
        serde_json::from_str(&reference("w3c-bitstring-status-list-vectors.json")).unwrap();
    assert_eq!(file.vectors.len(), 2);
    for v in &file.vectors {
        let bits = Bits::try_from(v.status_size).unwrap();
        let raw = decode_bitstring(&v.encoded_list, DEFAULT_DECODE_LIMIT).unwrap();
        let list = StatusList::from_decoded(Layout::W3c, bits, raw).unwrap();
        assert_eq!(list.len(), v.size, "{}", v.name);
        let expected = statuses(&v.statuses);
        assert_statuses(&list, &expected, &v.name);

        // And our own encoding of the same statuses decodes to the same list
        // (GZIP bytes are not unique, so compare decoded content).
        let mut ours = StatusList::new(Layout::W3c, bits, v.size).unwrap();
        for (idx, value) in &expected {
            ours.set(*idx, *value).unwrap();
        }
        let back =
            decode_bitstring(&encode_bitstring(ours.as_bytes()), DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(back, list.as_bytes(), "{}", v.name);
    }
}

#[test]
fn w3c_list_of_131072_entries_decodes_with_a_plain_gz_decoder_in_msb_order() {
    let len = 131_072u64;
    let mut list = StatusList::new(Layout::W3c, Bits::Two, len).unwrap();
    let set: Vec<(u64, u8)> = vec![
        (0, 1),
        (1, 2),
        (2, 3),
        (5, 1),
        (4_095, 2),
        (65_536, 1),
        (100_001, 3),
        (131_071, 2),
    ];
    for (idx, value) in &set {
        list.set(*idx, *value).unwrap();
    }
    let encoded = encode_bitstring(list.as_bytes());

    // Independent path: strip the multibase prefix, base64url, plain GzDecoder.
    let body = encoded.strip_prefix('u').expect("multibase u prefix");
    let gz = URL_SAFE_NO_PAD.decode(body).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), 32_768, "131,072 two-bit entries are 32 KiB");

    // By hand: entry i is bits [2i, 2i+2) counted from the most significant
    // bit of byte 0, the first of them the most significant bit of the value.
    let by_hand = |i: u64| -> u8 {
        let bit = i * 2;
        let byte = raw[(bit / 8) as usize];
        (byte >> (6 - (bit % 8))) & 0b11
    };
    for (idx, value) in &set {
        assert_eq!(by_hand(*idx), *value, "entry {idx}");
    }
    assert_eq!(raw[0], 0b0110_1100, "entries 0..4 = 1,2,3,0 from the MSB");
    assert_eq!(raw[1], 0b0001_0000, "entry 5 = 1 in bits 2..4 of byte 1");
    assert_eq!(raw[32_767], 0b0000_0010, "the last entry in the low bits");
    let others = (0..len).filter(|i| by_hand(*i) != 0).count();
    assert_eq!(others, set.len(), "nothing else is set");
}

#[test]
fn compression_bombs_are_refused() {
    // 64 MiB of zeros compress to about 64 KiB: four times the default limit.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let lst = encode_lst(&zeros);
    assert!(lst.len() < 200_000, "a bomb is small on the wire");
    assert_eq!(
        decode_lst(&lst, DEFAULT_DECODE_LIMIT),
        Err(CodecError::TooLarge {
            limit: DEFAULT_DECODE_LIMIT
        })
    );
    let encoded = encode_bitstring(&zeros);
    assert_eq!(
        decode_bitstring(&encoded, DEFAULT_DECODE_LIMIT),
        Err(CodecError::TooLarge {
            limit: DEFAULT_DECODE_LIMIT
        })
    );
    // Exactly at the limit is still fine.
    let at_limit = vec![0u8; DEFAULT_DECODE_LIMIT];
    assert_eq!(
        codec::unzlib(&codec::zlib(&at_limit), DEFAULT_DECODE_LIMIT)
            .unwrap()
            .len(),
        DEFAULT_DECODE_LIMIT
    );
}

fn layouts() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Ietf), Just(Layout::W3c)]
}

fn widths() -> impl Strategy<Value = Bits> {
    prop_oneof![
        Just(Bits::One),
        Just(Bits::Two),
        Just(Bits::Four),
        Just(Bits::Eight)
    ]
}

/// A list shape plus writes that fit it.
fn list_and_writes() -> impl Strategy<Value = (Layout, Bits, u64, Vec<(u64, u8)>)> {
    (layouts(), widths(), 1u64..3_000).prop_flat_map(|(layout, bits, len)| {
        let writes = prop::collection::vec((0..len, 0..=bits.max_value()), 0..200);
        (Just(layout), Just(bits), Just(len), writes)
    })
}

proptest! {
    #[test]
    fn set_get_matches_a_plain_model_and_survives_both_codecs(
        (layout, bits, len, writes) in list_and_writes()
    ) {
        let mut list = StatusList::new(layout, bits, len).unwrap();
        let mut model = vec![0u8; len as usize];
        for (idx, value) in &writes {
            list.set(*idx, *value).unwrap();
            model[*idx as usize] = *value;
        }
        for (idx, value) in model.iter().enumerate() {
            prop_assert_eq!(list.get(idx as u64).unwrap(), *value);
        }
        prop_assert!(list.get(len).is_err());

        let bytes = list.as_bytes().to_vec();
        let via_lst = decode_lst(&encode_lst(&bytes), DEFAULT_DECODE_LIMIT).unwrap();
        prop_assert_eq!(&via_lst, &bytes);
        let via_gzip = decode_bitstring(&encode_bitstring(&bytes), DEFAULT_DECODE_LIMIT).unwrap();
        prop_assert_eq!(&via_gzip, &bytes);

        let back = StatusList::from_bytes(layout, bits, len, via_lst).unwrap();
        prop_assert_eq!(back, list);
    }

    #[test]
    fn the_two_layouts_differ_only_in_bit_order_within_a_byte(
        bits in widths(), idx in 0u64..256, value in 1u8..=255
    ) {
        let value = value & bits.max_value();
        prop_assume!(value != 0);
        let mut ietf = StatusList::new(Layout::Ietf, bits, 256).unwrap();
        let mut w3c = StatusList::new(Layout::W3c, bits, 256).unwrap();
        ietf.set(idx, value).unwrap();
        w3c.set(idx, value).unwrap();
        let width = u64::from(bits.get());
        let byte = (idx * width / 8) as usize;
        let within = (idx * width % 8) as u32;
        prop_assert_eq!(ietf.as_bytes()[byte], value << within);
        prop_assert_eq!(w3c.as_bytes()[byte], value << (8 - within - u32::from(bits.get())));
    }

    #[test]
    fn decoders_never_panic_on_garbage(text in ".{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_lst(&text, 1 << 20);
        let _ = decode_bitstring(&text, 1 << 20);
        let b64 = URL_SAFE_NO_PAD.encode(&bytes);
        let _ = decode_lst(&b64, 1 << 20);
        let _ = decode_bitstring(&format!("u{b64}"), 1 << 20);
    }

    #[test]
    fn allocator_inverts_for_any_capacity(seed in any::<[u8; 32]>(), capacity in 1u64..(1 << 40), n in any::<u64>()) {
        let alloc = Allocator::new(&AllocatorKey::from_bytes(seed), capacity).unwrap();
        let n = n % capacity;
        let idx = alloc.permute(n).unwrap();
        prop_assert!(idx < capacity);
        prop_assert_eq!(alloc.invert(idx).unwrap(), n);
    }
}

fn keys() -> Vec<AllocatorKey> {
    let mut keys: Vec<AllocatorKey> = (0u8..2)
        .map(|s| AllocatorKey::from_bytes([s; 32]))
        .collect();
    keys.push(AllocatorKey::random());
    keys
}

#[test]
fn allocator_is_a_bijection_for_every_capacity_up_to_4096() {
    // Spread over threads: this is about 25 million permutations in all.
    let keys = keys();
    std::thread::scope(|scope| {
        for key in &keys {
            scope.spawn(move || {
                let mut seen = vec![u32::MAX; 4096];
                for capacity in 1u64..=4096 {
                    let alloc = Allocator::new(key, capacity).unwrap();
                    for n in 0..capacity {
                        let idx = alloc.permute(n).unwrap();
                        assert!(idx < capacity, "capacity {capacity}: {n} -> {idx}");
                        assert_ne!(
                            seen[idx as usize], capacity as u32,
                            "capacity {capacity}: index {idx} handed out twice"
                        );
                        seen[idx as usize] = capacity as u32;
                        assert_eq!(alloc.invert(idx).unwrap(), n, "capacity {capacity}");
                    }
                }
            });
        }
    });
}

#[test]
fn consecutive_allocations_are_scattered_and_keyed() {
    let capacity = 131_072u64;
    let a = Allocator::new(&AllocatorKey::from_bytes([7; 32]), capacity).unwrap();
    let b = Allocator::new(&AllocatorKey::from_bytes([8; 32]), capacity).unwrap();
    let order_a: Vec<u64> = (0..capacity).map(|n| a.permute(n).unwrap()).collect();
    let order_b: Vec<u64> = (0..capacity).map(|n| b.permute(n).unwrap()).collect();

    let adjacent = order_a
        .windows(2)
        .filter(|w| w[0].abs_diff(w[1]) == 1)
        .count();
    assert!(
        (adjacent as f64) < 0.01 * capacity as f64,
        "{adjacent} of {capacity} consecutive allocations were adjacent"
    );
    // Not the identity, and two keys give different orders.
    let fixed = order_a
        .iter()
        .enumerate()
        .filter(|(n, idx)| *n as u64 == **idx)
        .count();
    assert!(fixed < 100, "{fixed} fixed points");
    let same = order_a.iter().zip(&order_b).filter(|(x, y)| x == y).count();
    assert!(same < 100, "{same} positions agree between two keys");
    let mut sorted = order_a.clone();
    sorted.sort_unstable();
    assert!(sorted.iter().enumerate().all(|(i, idx)| i as u64 == *idx));
}
