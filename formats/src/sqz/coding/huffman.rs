//! Canonical Huffman codes limited to [`MAX_CODE_LENGTH`] bits: optimal
//! length-limited code lengths (package-merge), DEFLATE-style canonical code
//! assignment, and a table-driven decoder.

use super::bits::BitReader;
use crate::sqz::MAX_CODE_LENGTH;

/// Codes up to this many bits are decoded with one table lookup; longer,
/// rarer ones by a per-length search.
const TABLE_BITS: u8 = 10;

/// Optimal code lengths for symbol frequencies `freqs` with no code longer
/// than [`MAX_CODE_LENGTH`] bits; 0 for symbols that do not occur. A lone
/// occurring symbol gets length 1.
///
/// Uses package-merge (Larmore & Hirschberg 1990), which yields a minimum
/// total length among all codes respecting the limit, so its total length
/// equals plain Huffman's whenever the limit does not bind. Ties are broken by symbol, so
/// the result is deterministic.
///
/// # Panics
/// If more than `2^MAX_CODE_LENGTH` symbols occur (no code fits the limit).
pub fn code_lengths(freqs: &[u64]) -> Vec<u8> {
    let mut lengths = vec![0u8; freqs.len()];
    let mut leaves: Vec<(u64, usize)> = freqs
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(s, f)| (*f, s))
        .collect();
    leaves.sort_unstable();
    match leaves.len() {
        0 => return lengths,
        1 => {
            lengths[leaves[0].1] = 1;
            return lengths;
        }
        _ => {}
    }
    let n = leaves.len();
    assert!(
        n as u64 <= 1 << MAX_CODE_LENGTH,
        "{n} symbols cannot have codes of at most {MAX_CODE_LENGTH} bits"
    );
    let keep = 2 * n - 2;
    let levels = usize::from(MAX_CODE_LENGTH);
    // lists[l] = for the list of code length l + 1: whether each of its
    // (at most `keep`) smallest items is a leaf rather than a package of
    // two items of the next deeper list. The deepest list is the leaves.
    let mut leaf_flags: Vec<Vec<bool>> = vec![vec![true; n]; 1];
    let mut weights: Vec<u64> = leaves.iter().map(|(f, _)| *f).collect();
    for _ in 1..levels {
        let packages: Vec<u64> = weights.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        let (mut merged, mut flags) = (Vec::with_capacity(keep), Vec::with_capacity(keep));
        let (mut li, mut pi) = (0, 0);
        while merged.len() < keep && (li < n || pi < packages.len()) {
            let take_leaf = pi == packages.len() || (li < n && leaves[li].0 <= packages[pi]);
            if take_leaf {
                merged.push(leaves[li].0);
                li += 1;
            } else {
                merged.push(packages[pi]);
                pi += 1;
            }
            flags.push(take_leaf);
        }
        leaf_flags.push(flags);
        weights = merged;
    }
    // Select the `keep` smallest items of the shallowest list; every
    // selected package selects two items one level deeper. A leaf's code
    // length is the number of lists in which it is selected.
    let mut selected = keep;
    for flags in leaf_flags.iter().rev() {
        let leaves_selected = flags[..selected].iter().filter(|f| **f).count();
        for &(_, symbol) in &leaves[..leaves_selected] {
            lengths[symbol] += 1;
        }
        selected = 2 * (selected - leaves_selected);
    }
    lengths
}

/// Canonical codes for `lengths` as in DEFLATE (RFC 1951, 3.2.2): codes are
/// assigned in order of (length, symbol), the first is all zeros, and each
/// next one is the previous plus one, shifted left by the length increase.
/// `lengths` must be at most [`MAX_CODE_LENGTH`] and satisfy Kraft.
pub(crate) fn canonical_codes(lengths: &[u8]) -> Vec<u32> {
    let first = first_codes(&length_counts(lengths));
    let mut next = first;
    lengths
        .iter()
        .map(|&len| {
            if len == 0 {
                return 0;
            }
            let code = next[usize::from(len)];
            next[usize::from(len)] += 1;
            code
        })
        .collect()
}

/// `counts[l]` = number of symbols with code length `l` (`counts[0]` unused).
fn length_counts(lengths: &[u8]) -> [u32; MAX_CODE_LENGTH as usize + 1] {
    let mut counts = [0u32; MAX_CODE_LENGTH as usize + 1];
    for &len in lengths.iter().filter(|l| **l > 0) {
        counts[usize::from(len)] += 1;
    }
    counts
}

/// The first canonical code of each length.
fn first_codes(
    counts: &[u32; MAX_CODE_LENGTH as usize + 1],
) -> [u32; MAX_CODE_LENGTH as usize + 1] {
    let mut first = [0u32; MAX_CODE_LENGTH as usize + 1];
    let mut code = 0u32;
    for len in 1..first.len() {
        code = (code + counts[len - 1]) << 1;
        first[len] = code;
    }
    first
}

/// Checks a code length table against its stream's alphabet: one length
/// per symbol, none over [`MAX_CODE_LENGTH`], Kraft sum at most 1 (a
/// prefix code). The one place these rules are written; the message says
/// which one failed.
pub(crate) fn check_lengths(lengths: &[u8], alphabet: u32) -> Result<(), String> {
    if lengths.len() as u64 != u64::from(alphabet) {
        return Err(format!(
            "{} code lengths for alphabet {alphabet}",
            lengths.len()
        ));
    }
    if let Some(&l) = lengths.iter().find(|&&l| l > MAX_CODE_LENGTH) {
        return Err(format!("code length {l} exceeds {MAX_CODE_LENGTH}"));
    }
    let kraft: u64 = lengths
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| 1u64 << (MAX_CODE_LENGTH - l))
        .sum();
    if kraft > 1 << MAX_CODE_LENGTH {
        return Err("code lengths violate Kraft's inequality (not a prefix code)".to_string());
    }
    Ok(())
}

/// A decoder for one validated canonical code.
pub(crate) struct Decoder {
    /// Bits of the first lookup.
    table_bits: u32,
    /// Indexed by the next `table_bits` bits: `(symbol, length)` for codes
    /// of at most `table_bits` bits, length 0 otherwise.
    table: Vec<(u32, u8)>,
    max_length: u8,
    counts: [u32; MAX_CODE_LENGTH as usize + 1],
    first: [u32; MAX_CODE_LENGTH as usize + 1],
    /// Index into `by_code` of the first symbol of each length.
    offsets: [u32; MAX_CODE_LENGTH as usize + 1],
    /// Occurring symbols in canonical order (length, then symbol).
    by_code: Vec<u32>,
}

impl Decoder {
    /// Builds the decoder; `lengths` passed [`check_lengths`] and has at
    /// least one code.
    pub(crate) fn new(lengths: &[u8]) -> Self {
        let counts = length_counts(lengths);
        let first = first_codes(&counts);
        let max_length = lengths.iter().copied().max().unwrap_or(0);
        let mut offsets = [0u32; MAX_CODE_LENGTH as usize + 1];
        for len in 1..offsets.len() {
            offsets[len] = offsets[len - 1] + counts[len - 1];
        }
        let mut by_code = vec![
            0u32;
            offsets[usize::from(max_length)] as usize
                + counts[usize::from(max_length)] as usize
        ];
        let mut fill = offsets;
        for (symbol, &len) in lengths.iter().enumerate().filter(|(_, l)| **l > 0) {
            by_code[fill[usize::from(len)] as usize] = symbol as u32;
            fill[usize::from(len)] += 1;
        }
        let table_bits = u32::from(max_length.min(TABLE_BITS));
        let mut table = vec![(0u32, 0u8); 1 << table_bits];
        for ((symbol, &len), code) in lengths.iter().enumerate().zip(canonical_codes(lengths)) {
            let len32 = u32::from(len);
            if len == 0 || len32 > table_bits {
                continue;
            }
            let spread = table_bits - len32;
            let start = (code << spread) as usize;
            table[start..start + (1 << spread)].fill((symbol as u32, len));
        }
        Self {
            table_bits,
            table,
            max_length,
            counts,
            first,
            offsets,
            by_code,
        }
    }

    /// Decodes one symbol; `None` when the next bits are no code of the
    /// table (possible only for an incomplete code).
    pub(crate) fn decode(&self, reader: &mut BitReader) -> Option<u32> {
        let (symbol, len) = self.table[reader.peek(self.table_bits) as usize];
        if len > 0 {
            reader.consume(u32::from(len));
            return Some(symbol);
        }
        for len in self.table_bits + 1..=u32::from(self.max_length) {
            let l = len as usize;
            let offset_in_length = reader.peek(len).wrapping_sub(self.first[l]);
            if offset_in_length < self.counts[l] {
                reader.consume(len);
                return Some(self.by_code[(self.offsets[l] + offset_in_length) as usize]);
            }
        }
        None
    }
}
