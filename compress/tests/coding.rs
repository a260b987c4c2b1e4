//! Raw and Huffman stream coding: round trips, the size rule, the 24-bit
//! limit, optimality, and rejection of corrupt input.

use compress::coding::{
    coded_size_bytes, decode_stream, encode_stream, huffman_code_lengths, raw_bits, Coded, Coding,
    MAX_CODE_LENGTH,
};
use compress::rng::SplitMix64;
use compress::CodingError;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Encodes, checks the payload decodes back to `symbols`, and returns the
/// coded stream.
fn round_trip(symbols: &[u32], alphabet: u32) -> Coded {
    let coded = encode_stream(symbols, alphabet);
    let decoded = decode_stream(&coded.coding, &coded.payload, symbols.len(), alphabet)
        .expect("an encoder's own output must decode");
    assert_eq!(decoded, symbols);
    coded
}

/// Size of the raw coding, computed from its definition.
fn raw_size(count: usize, alphabet: u32) -> usize {
    let bits = (alphabet as f64).log2().ceil() as usize;
    (count * bits).div_ceil(8)
}

/// Total bits of a plain (unlimited) Huffman code, by the classic
/// two-smallest merging: the sum of all merged weights.
fn plain_huffman_bits(freqs: &[u64]) -> u64 {
    let mut heap: BinaryHeap<Reverse<u64>> = freqs
        .iter()
        .filter(|f| **f > 0)
        .map(|f| Reverse(*f))
        .collect();
    if heap.len() == 1 {
        return heap.pop().map_or(0, |Reverse(f)| f);
    }
    let mut total = 0;
    while heap.len() > 1 {
        let (Reverse(a), Reverse(b)) = (heap.pop().unwrap(), heap.pop().unwrap());
        total += a + b;
        heap.push(Reverse(a + b));
    }
    total
}

/// Depth of the deepest leaf of a plain Huffman tree.
fn plain_huffman_depth(freqs: &[u64]) -> u32 {
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = freqs
        .iter()
        .filter(|f| **f > 0)
        .map(|f| Reverse((*f, 0)))
        .collect();
    while heap.len() > 1 {
        let (Reverse((a, da)), Reverse((b, db))) = (heap.pop().unwrap(), heap.pop().unwrap());
        heap.push(Reverse((a + b, da.max(db) + 1)));
    }
    heap.pop().map_or(0, |Reverse((_, d))| d)
}

fn histogram(symbols: &[u32], alphabet: u32) -> Vec<u64> {
    let mut freqs = vec![0u64; alphabet as usize];
    for &s in symbols {
        freqs[s as usize] += 1;
    }
    freqs
}

fn kraft_sum(lengths: &[u8]) -> f64 {
    lengths
        .iter()
        .filter(|l| **l > 0)
        .map(|&l| 0.5f64.powi(i32::from(l)))
        .sum()
}

/// Symbols `|g|·spread` for standard normal `g`: frequencies fall off like
/// those of codebook indices of weights.
fn skewed(n: usize, alphabet: u32, spread: f64, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| ((rng.gaussian().abs() * spread) as u32).min(alphabet - 1))
        .collect()
}

fn stream_strategy() -> impl Strategy<Value = (u32, Vec<u32>)> {
    (1u32..=300).prop_flat_map(|alphabet| {
        let symbol = prop_oneof![
            3 => 0..alphabet.min(4),
            1 => 0..alphabet,
        ];
        (Just(alphabet), prop::collection::vec(symbol, 0..3000))
    })
}

proptest! {
    #[test]
    fn random_streams_round_trip_at_the_smaller_size((alphabet, symbols) in stream_strategy()) {
        let coded = round_trip(&symbols, alphabet);
        let raw = raw_size(symbols.len(), alphabet);
        prop_assert!(coded_size_bytes(&coded) <= raw);
        match &coded.coding {
            Coding::Raw { bits } => {
                prop_assert_eq!(*bits, raw_bits(alphabet));
                prop_assert_eq!(coded.payload.len(), raw);
            }
            Coding::Huffman { code_lengths } => {
                prop_assert!(coded_size_bytes(&coded) < raw);
                prop_assert_eq!(code_lengths.len(), alphabet as usize);
                let freqs = histogram(&symbols, alphabet);
                let bits: u64 = freqs.iter().zip(code_lengths).map(|(f, l)| f * u64::from(*l)).sum();
                prop_assert_eq!(coded.payload.len() as u64, bits.div_ceil(8));
                prop_assert_eq!(coded_size_bytes(&coded), alphabet as usize + coded.payload.len());
            }
        }
    }

    #[test]
    fn skewed_streams_round_trip(alphabet in 2u32..=1024, spread in 0.3f64..64.0, n in 1usize..40_000, seed in any::<u64>()) {
        round_trip(&skewed(n, alphabet, spread, seed), alphabet);
    }

    #[test]
    fn huffman_lengths_are_optimal_and_complete(freqs in prop::collection::vec(0u64..5000, 1..400)) {
        let lengths = huffman_code_lengths(&freqs);
        let occurring = freqs.iter().filter(|f| **f > 0).count();
        prop_assert!(lengths.iter().all(|&l| l <= MAX_CODE_LENGTH));
        for (f, l) in freqs.iter().zip(&lengths) {
            prop_assert_eq!(*f > 0, *l > 0);
        }
        if occurring >= 2 {
            // Without a binding limit the code is a full Huffman code.
            prop_assert!(plain_huffman_depth(&freqs) <= u32::from(MAX_CODE_LENGTH));
            prop_assert_eq!(kraft_sum(&lengths), 1.0);
            let bits: u64 = freqs.iter().zip(&lengths).map(|(f, l)| f * u64::from(*l)).sum();
            prop_assert_eq!(bits, plain_huffman_bits(&freqs));
        }
    }

    #[test]
    fn corrupted_payloads_error_or_decode_but_never_panic(
        (alphabet, symbols) in stream_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let coded = encode_stream(&symbols, alphabet);
        let mut flipped = coded.payload.clone();
        let len = flipped.len();
        if len > 0 {
            for (at, bit) in &flips {
                flipped[at.index(len)] ^= 1 << bit;
            }
        }
        if let Ok(decoded) = decode_stream(&coded.coding, &flipped, symbols.len(), alphabet) {
            prop_assert_eq!(decoded.len(), symbols.len());
            prop_assert!(decoded.iter().all(|&s| s < alphabet));
        }
        if !coded.payload.is_empty() && raw_bits(alphabet) > 0 {
            let short = &coded.payload[..cut.index(coded.payload.len())];
            prop_assert!(decode_stream(&coded.coding, short, symbols.len(), alphabet).is_err());
        }
        let mut long = coded.payload.clone();
        long.push(0);
        prop_assert!(decode_stream(&coded.coding, &long, symbols.len(), alphabet).is_err());
    }

    #[test]
    fn arbitrary_tables_and_payloads_never_panic(
        lengths in prop::collection::vec(0u8..30, 1..64),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        count in 0usize..600,
    ) {
        let alphabet = lengths.len() as u32;
        if let Ok(decoded) = decode_stream(&Coding::Huffman { code_lengths: lengths }, &payload, count, alphabet) {
            prop_assert_eq!(decoded.len(), count);
        }
        let bits = raw_bits(alphabet);
        if let Ok(decoded) = decode_stream(&Coding::Raw { bits }, &payload, count, alphabet) {
            prop_assert!(decoded.iter().all(|&s| s < alphabet));
        }
    }
}

#[test]
fn empty_stream_is_raw_with_empty_payload() {
    for alphabet in [1, 2, 16, 256, 65536] {
        let coded = round_trip(&[], alphabet);
        assert_eq!(
            coded.coding,
            Coding::Raw {
                bits: raw_bits(alphabet)
            }
        );
        assert!(coded.payload.is_empty());
    }
}

#[test]
fn raw_bits_is_ceil_log2() {
    let expected = [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (16, 4),
        (17, 5),
        (256, 8),
        (65536, 16),
        (u32::MAX, 32),
    ];
    for (alphabet, bits) in expected {
        assert_eq!(raw_bits(alphabet), bits, "alphabet {alphabet}");
    }
}

#[test]
fn alphabet_of_one_codes_in_zero_bits() {
    let coded = round_trip(&[0; 1000], 1);
    assert_eq!(coded.coding, Coding::Raw { bits: 0 });
    assert!(coded.payload.is_empty());
}

#[test]
fn single_symbol_stream_costs_one_bit_per_symbol() {
    let symbols = vec![5u32; 10_000];
    let coded = round_trip(&symbols, 16);
    let Coding::Huffman { code_lengths } = &coded.coding else {
        panic!(
            "a long constant stream must be Huffman coded, got {:?}",
            coded.coding
        );
    };
    let mut expected = vec![0u8; 16];
    expected[5] = 1;
    assert_eq!(code_lengths, &expected);
    assert_eq!(coded.payload, vec![0u8; 10_000 / 8]);
}

#[test]
fn long_runs_round_trip() {
    let mut symbols = vec![0u32; 50_000];
    symbols.extend(std::iter::repeat_n(255, 50_000));
    symbols.extend(std::iter::repeat_n(7, 3));
    let coded = round_trip(&symbols, 256);
    assert!(matches!(coded.coding, Coding::Huffman { .. }));
}

#[test]
fn alphabet_65536_round_trips_raw_and_huffman() {
    let mut rng = SplitMix64::new(7);
    let uniform: Vec<u32> = (0..5000).map(|_| rng.below(65536) as u32).collect();
    let coded = round_trip(&uniform, 65536);
    assert_eq!(coded.coding, Coding::Raw { bits: 16 });

    let skewed = skewed(200_000, 65536, 16.0, 3);
    let coded = round_trip(&skewed, 65536);
    assert!(matches!(coded.coding, Coding::Huffman { .. }));
    assert!(coded_size_bytes(&coded) < raw_size(skewed.len(), 65536));
}

#[test]
fn fibonacci_frequencies_are_limited_to_24_bits() {
    // Fibonacci frequencies give the deepest possible Huffman tree.
    let mut freqs = vec![1u64, 1];
    while freqs.len() < 30 {
        freqs.push(freqs[freqs.len() - 1] + freqs[freqs.len() - 2]);
    }
    assert!(
        plain_huffman_depth(&freqs) > u32::from(MAX_CODE_LENGTH),
        "the limit must bind"
    );
    let symbols: Vec<u32> = freqs
        .iter()
        .enumerate()
        .flat_map(|(s, &f)| std::iter::repeat_n(s as u32, f as usize))
        .collect();
    let coded = round_trip(&symbols, 30);
    let Coding::Huffman { code_lengths } = &coded.coding else {
        panic!("expected Huffman, got {:?}", coded.coding);
    };
    assert_eq!(code_lengths.iter().copied().max(), Some(MAX_CODE_LENGTH));
    assert!(kraft_sum(code_lengths) <= 1.0);
    let bits: u64 = freqs
        .iter()
        .zip(code_lengths)
        .map(|(f, l)| f * u64::from(*l))
        .sum();
    assert!(
        bits >= plain_huffman_bits(&freqs),
        "cannot beat the unlimited optimum"
    );
}

#[test]
fn skewed_stream_prefers_huffman() {
    let symbols = skewed(100_000, 256, 32.0, 11);
    let coded = round_trip(&symbols, 256);
    assert!(matches!(coded.coding, Coding::Huffman { .. }));
}

#[test]
fn canonical_codes_follow_deflate() {
    // RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for symbols 0..8
    // give the codes 010, 011, 100, 101, 110, 00, 1110, 1111.
    let lengths = vec![3u8, 3, 3, 3, 3, 2, 4, 4];
    // 010 011 00 1110 1111 101, then 5 padding zeros.
    let payload = [0b0100_1100, 0b1110_1111, 0b1010_0000];
    let decoded = decode_stream(
        &Coding::Huffman {
            code_lengths: lengths,
        },
        &payload,
        6,
        8,
    )
    .unwrap();
    assert_eq!(decoded, [0, 1, 5, 6, 7, 3]);
}

#[test]
fn invalid_tables_and_payloads_are_rejected() {
    let huffman = |lengths: Vec<u8>| Coding::Huffman {
        code_lengths: lengths,
    };
    assert_eq!(
        decode_stream(&huffman(vec![1, 1, 1]), &[0], 1, 3),
        Err(CodingError::OverSubscribed)
    );
    assert_eq!(
        decode_stream(&huffman(vec![25, 1]), &[0], 1, 2),
        Err(CodingError::CodeTooLong {
            symbol: 0,
            length: 25,
            max: 24
        })
    );
    assert_eq!(
        decode_stream(&huffman(vec![1, 1]), &[0], 1, 3),
        Err(CodingError::TableSize {
            lengths: 2,
            alphabet: 3
        })
    );
    assert_eq!(
        decode_stream(&huffman(vec![0, 0]), &[0], 1, 2),
        Err(CodingError::EmptyCode { count: 1 })
    );
    // Only code "0" exists: a 1 bit is invalid.
    assert_eq!(
        decode_stream(&huffman(vec![1, 0]), &[0x80], 1, 2),
        Err(CodingError::InvalidCode { index: 0 })
    );
    // Nonzero padding after one 1-bit symbol.
    assert_eq!(
        decode_stream(&huffman(vec![1, 1]), &[0x01], 1, 2),
        Err(CodingError::NonZeroPadding)
    );
    assert_eq!(
        decode_stream(&Coding::Raw { bits: 3 }, &[0], 2, 16),
        Err(CodingError::RawBits {
            bits: 3,
            alphabet: 16,
            expected: 4
        })
    );
    // Raw 2-bit symbol 3 in an alphabet of 3.
    assert!(matches!(
        decode_stream(&Coding::Raw { bits: 2 }, &[0b1100_0000], 1, 3),
        Err(CodingError::SymbolOutOfRange { symbol: 3, .. })
    ));
    assert_eq!(
        decode_stream(&Coding::Raw { bits: 8 }, &[1, 2], 3, 256),
        Err(CodingError::Truncated { index: 2, count: 3 })
    );
    assert_eq!(
        decode_stream(&Coding::Raw { bits: 8 }, &[1, 2], 1, 256),
        Err(CodingError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        decode_stream(&Coding::Raw { bits: 0 }, &[], 1, 0),
        Err(CodingError::BadAlphabet { alphabet: 0 })
    );
}

#[test]
fn huge_counts_fail_before_allocating() {
    let huffman = Coding::Huffman {
        code_lengths: vec![1, 1],
    };
    assert!(matches!(
        decode_stream(&huffman, &[0; 4], usize::MAX, 2),
        Err(CodingError::Truncated { .. })
    ));
    assert!(matches!(
        decode_stream(&Coding::Raw { bits: 8 }, &[0; 4], usize::MAX, 256),
        Err(CodingError::Truncated { .. })
    ));
}
