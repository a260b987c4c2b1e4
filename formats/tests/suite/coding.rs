//! Raw and Huffman stream coding: round trips, the size rule (the bytes
//! the file really stores), the 24-bit limit, optimality, and rejection of
//! corrupt input.

use crate::splitmix::SplitMix;
use formats::sqz::coding::{decode_stream, encode_stream, huffman_code_lengths, raw_bits};
use formats::sqz::{Stream, StreamCoding as Coding, MAX_CODE_LENGTH};
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Encodes, checks the stream decodes back to `symbols`, and returns it.
fn round_trip(symbols: &[u32], alphabet: u32) -> Stream {
    let coded = encode_stream(symbols, alphabet);
    assert_eq!(coded.count, symbols.len() as u64);
    assert_eq!(coded.alphabet, alphabet);
    let decoded = decode_stream(&coded).expect("an encoder's own output must decode");
    assert_eq!(decoded, symbols);
    coded
}

/// Decodes `count` symbols over `alphabet` from `payload` coded with
/// `coding`; the error as its one-line message.
fn decode(coding: Coding, payload: &[u8], count: u64, alphabet: u32) -> Result<Vec<u32>, String> {
    decode_stream(&Stream {
        count,
        alphabet,
        coding,
        payload: payload.to_vec(),
    })
    .map_err(|e| e.to_string())
}

/// Size of the raw payload, computed from its definition.
fn raw_size(count: usize, alphabet: u32) -> usize {
    let bits = (alphabet as f64).log2().ceil() as usize;
    (count * bits).div_ceil(8)
}

/// Bytes the raw coding of `count` symbols over `alphabet` takes in a file.
fn raw_stored_bytes(count: usize, alphabet: u32) -> usize {
    Stream {
        count: count as u64,
        alphabet,
        coding: Coding::Raw {
            bits: raw_bits(alphabet),
        },
        payload: vec![0; raw_size(count, alphabet)],
    }
    .stored_bytes()
    .total()
}

/// Bytes `stream` takes in a file.
fn stored(stream: &Stream) -> usize {
    stream.stored_bytes().total()
}

impl SplitMix {
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Standard normal, by Box-Muller.
    fn gaussian(&mut self) -> f64 {
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
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
    let mut rng = SplitMix(seed);
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
        let raw = raw_stored_bytes(symbols.len(), alphabet);
        prop_assert!(stored(&coded) <= raw);
        match &coded.coding {
            Coding::Raw { bits } => {
                prop_assert_eq!(*bits, raw_bits(alphabet));
                prop_assert_eq!(coded.payload.len(), raw_size(symbols.len(), alphabet));
            }
            Coding::Huffman { code_lengths } => {
                prop_assert!(stored(&coded) < raw, "Huffman only when strictly smaller in the file");
                prop_assert_eq!(code_lengths.len(), alphabet as usize);
                let freqs = histogram(&symbols, alphabet);
                let bits: u64 = freqs.iter().zip(code_lengths).map(|(f, l)| f * u64::from(*l)).sum();
                prop_assert_eq!(coded.payload.len() as u64, bits.div_ceil(8));
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
        let count = symbols.len() as u64;
        if let Ok(decoded) = decode(coded.coding.clone(), &flipped, count, alphabet) {
            prop_assert_eq!(decoded.len(), symbols.len());
            prop_assert!(decoded.iter().all(|&s| s < alphabet));
        }
        if !coded.payload.is_empty() && raw_bits(alphabet) > 0 {
            let short = &coded.payload[..cut.index(coded.payload.len())];
            prop_assert!(decode(coded.coding.clone(), short, count, alphabet).is_err());
        }
        let mut long = coded.payload.clone();
        long.push(0);
        prop_assert!(decode(coded.coding.clone(), &long, count, alphabet).is_err());
    }

    #[test]
    fn arbitrary_tables_and_payloads_never_panic(
        lengths in prop::collection::vec(0u8..30, 1..64),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        count in 0u64..600,
    ) {
        let alphabet = lengths.len() as u32;
        if let Ok(decoded) = decode(Coding::Huffman { code_lengths: lengths }, &payload, count, alphabet) {
            prop_assert_eq!(decoded.len() as u64, count);
        }
        let bits = raw_bits(alphabet);
        if let Ok(decoded) = decode(Coding::Raw { bits }, &payload, count, alphabet) {
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
    let mut rng = SplitMix(7);
    let uniform: Vec<u32> = (0..5000).map(|_| rng.below(65536) as u32).collect();
    let coded = round_trip(&uniform, 65536);
    assert_eq!(coded.coding, Coding::Raw { bits: 16 });

    let skewed = skewed(200_000, 65536, 16.0, 3);
    let coded = round_trip(&skewed, 65536);
    assert!(matches!(coded.coding, Coding::Huffman { .. }));
    assert!(stored(&coded) < raw_stored_bytes(skewed.len(), 65536));
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
    let decoded = decode(
        Coding::Huffman {
            code_lengths: lengths,
        },
        &payload,
        6,
        8,
    )
    .unwrap();
    assert_eq!(decoded, [0, 1, 5, 6, 7, 3]);
}

/// Asserts that `result` is an error whose message contains `needle`.
#[track_caller]
fn assert_error(result: Result<Vec<u32>, String>, needle: &str) {
    match result {
        Err(message) => assert!(message.contains(needle), "{message:?} lacks {needle:?}"),
        Ok(symbols) => panic!("expected an error containing {needle:?}, decoded {symbols:?}"),
    }
}

#[test]
fn invalid_tables_and_payloads_are_rejected() {
    let huffman = |lengths: Vec<u8>| Coding::Huffman {
        code_lengths: lengths,
    };
    assert_error(decode(huffman(vec![1, 1, 1]), &[0], 1, 3), "Kraft");
    assert_error(
        decode(huffman(vec![25, 1]), &[0], 1, 2),
        "code length 25 exceeds 24",
    );
    assert_error(
        decode(huffman(vec![1, 1]), &[0], 1, 3),
        "2 code lengths for alphabet 3",
    );
    assert_error(decode(huffman(vec![0, 0]), &[0], 1, 2), "no codes");
    // Only code "0" exists: a 1 bit is invalid.
    assert_error(
        decode(huffman(vec![1, 0]), &[0x80], 1, 2),
        "invalid Huffman code for symbol number 0",
    );
    // Nonzero padding after one 1-bit symbol.
    assert_error(decode(huffman(vec![1, 1]), &[0x01], 1, 2), "padding");
    assert_error(
        decode(Coding::Raw { bits: 3 }, &[0], 2, 16),
        "3-bit raw symbols for alphabet 16 (needs 4)",
    );
    // Raw 2-bit symbol 3 in an alphabet of 3.
    assert_error(
        decode(Coding::Raw { bits: 2 }, &[0b1100_0000], 1, 3),
        "symbol 3 at index 0 is outside the alphabet of 3",
    );
    assert_error(
        decode(Coding::Raw { bits: 8 }, &[1, 2], 3, 256),
        "2 payload bytes for 3 8-bit symbols",
    );
    assert_error(
        decode(Coding::Raw { bits: 8 }, &[1, 2], 1, 256),
        "2 payload bytes for 1 8-bit symbols",
    );
    // Two 1-bit Huffman symbols need one byte, not two.
    assert_error(
        decode(huffman(vec![1, 1]), &[0, 0], 2, 2),
        "cannot hold 2 symbols",
    );
    assert_error(
        decode(Coding::Raw { bits: 0 }, &[], 1, 0),
        "alphabet 0 is outside 1..=65536",
    );
}

#[test]
fn huge_counts_fail_before_allocating() {
    let huffman = || Coding::Huffman {
        code_lengths: vec![1, 1],
    };
    assert_error(decode(huffman(), &[0; 4], u64::MAX, 2), "exceed the limit");
    assert_error(decode(huffman(), &[0; 4], 1 << 28, 2), "cannot hold");
    assert_error(
        decode(Coding::Raw { bits: 8 }, &[0; 4], 1 << 28, 256),
        "payload bytes for",
    );
    // An alphabet of one codes any number of symbols in zero bytes; the
    // count is still bounded.
    assert_error(
        decode(Coding::Raw { bits: 0 }, &[], u64::MAX, 1),
        "exceed the limit",
    );
}
