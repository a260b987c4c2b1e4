//! Coding the positions of a sparse layer's surviving weights as gap
//! symbols, like Deep Compression's relative indices.
//!
//! Entries sit at strictly increasing positions `p_0 < p_1 < …` of the
//! flattened weight array. With `p_-1 = -1`, the gap before entry `i` is
//! `g = p_i - p_{i-1} - 1`. With an alphabet of `A` symbols, a gap is
//! written as: symbol `A-1` ("skip `A-1` positions, no entry") while
//! `g >= A-1`, subtracting `A-1` each time, then symbol `g` ("skip `g`
//! positions, then one entry"). So the number of entries equals the number
//! of symbols below `A-1`, and zeros after the last entry are not coded.
//! Unlike Han et al.'s filler entries, a skip carries no codebook index.

use super::{choose_coding_by, decode_stream, pack};
use crate::sqz::Stream;
use crate::{FormatError, Result};

/// Gap alphabets [`encode_positions`] tries: `2^2 ..= 2^8` (16 is the
/// paper's 4-bit baseline).
pub const GAP_ALPHABETS: [u32; 7] = [4, 8, 16, 32, 64, 128, 256];

/// The gap symbols (over `alphabet`) of strictly increasing `positions`.
///
/// # Panics
/// If `alphabet < 2` or `positions` is not strictly increasing (caller
/// bugs, not data errors).
pub fn positions_to_gaps(positions: &[usize], alphabet: u32) -> Vec<u32> {
    assert!(
        alphabet >= 2,
        "a gap alphabet needs at least 2 symbols, got {alphabet}"
    );
    let skip = alphabet - 1;
    let mut gaps = Vec::with_capacity(positions.len());
    let mut next = 0usize;
    for &p in positions {
        assert!(p >= next, "positions must be strictly increasing (at {p})");
        let gap = p - next;
        let skips = gap / skip as usize;
        gaps.extend(std::iter::repeat_n(skip, skips));
        gaps.push((gap - skips * skip as usize) as u32);
        next = p + 1;
    }
    gaps
}

/// The positions coded by `gaps` over `alphabet`, each checked to lie
/// below `len`. Errors on an alphabet below 2, a symbol outside the
/// alphabet, an entry at or beyond `len`, or skip symbols after the last
/// entry (which the encoder never writes). Never panics; allocates at most
/// one position per gap symbol.
pub fn gaps_to_positions(gaps: &[u32], alphabet: u32, len: usize) -> Result<Vec<usize>> {
    if alphabet < 2 {
        return Err(FormatError::invalid(format!(
            "gap alphabet {alphabet} is below 2"
        )));
    }
    let skip = alphabet - 1;
    let mut positions = Vec::with_capacity(gaps.iter().filter(|&&g| g < skip).count());
    // First position not yet covered; u64 so that long skip runs cannot
    // overflow before the range check.
    let mut next: u64 = 0;
    let mut skipped_since_entry = false;
    for (index, &g) in gaps.iter().enumerate() {
        if g > skip {
            return Err(FormatError::invalid(format!(
                "symbol {g} at index {index} is outside the alphabet of {alphabet}"
            )));
        }
        if g == skip {
            next = next.saturating_add(u64::from(skip));
            skipped_since_entry = true;
            continue;
        }
        let position = next.saturating_add(u64::from(g));
        if position >= len as u64 {
            return Err(FormatError::invalid(format!(
                "sparse entry at position {position} lies outside a layer of {len} weights"
            )));
        }
        positions.push(position as usize);
        next = position + 1;
        skipped_since_entry = false;
    }
    if skipped_since_entry {
        return Err(FormatError::invalid(
            "gap stream ends with skip symbols after its last entry",
        ));
    }
    Ok(positions)
}

/// The positions a gap stream written by [`encode_positions`] lists, each
/// checked to lie below `len`: [`decode_stream`] then [`gaps_to_positions`].
pub fn decode_positions(stream: &Stream, len: usize) -> Result<Vec<usize>> {
    gaps_to_positions(&decode_stream(stream)?, stream.alphabet, len)
}

/// Codes strictly increasing `positions` (all below `len`) as gap symbols
/// with every alphabet of [`GAP_ALPHABETS`] and keeps the stream that takes
/// the fewest bytes in the file (see [`Stream::stored_bytes`]), the smaller
/// alphabet on ties. [`decode_positions`] undoes it.
///
/// # Panics
/// If `positions` is not strictly increasing or reaches `len`.
pub fn encode_positions(positions: &[usize], len: usize) -> Stream {
    if let Some(&last) = positions.last() {
        assert!(
            last < len,
            "position {last} is outside a layer of {len} weights"
        );
    }
    let histogram = GapHistogram::new(positions);
    let candidate = |alphabet: u32| {
        let (symbols, freqs) = histogram.symbols(alphabet);
        let (coding, size) = choose_coding_by(symbols, alphabet, || freqs);
        (size, alphabet, coding)
    };
    let mut best = candidate(GAP_ALPHABETS[0]);
    for &alphabet in &GAP_ALPHABETS[1..] {
        let next = candidate(alphabet);
        if next.0 < best.0 {
            best = next;
        }
    }
    let (_, alphabet, coding) = best;
    let gaps = positions_to_gaps(positions, alphabet);
    Stream {
        count: gaps.len() as u64,
        alphabet,
        payload: pack(&gaps, &coding),
        coding,
    }
}

/// How often each gap occurs between strictly increasing positions, from
/// which the gap symbols of every alphabet are counted without writing
/// them out (a VGG-16 classifier layer has tens of millions of entries).
struct GapHistogram {
    /// `short[g]`: how many gaps are exactly `g`, for `g` below
    /// [`GapHistogram::SHORT`].
    short: Vec<u64>,
    /// The longer gaps, one entry each.
    long: Vec<usize>,
}

impl GapHistogram {
    /// Gaps below this are counted by value; longer ones (rare in layers
    /// worth storing sparse) are kept one by one.
    const SHORT: usize = 4096;

    fn new(positions: &[usize]) -> Self {
        let mut short = vec![0u64; Self::SHORT];
        let mut long = Vec::new();
        let mut next = 0usize;
        for &p in positions {
            assert!(p >= next, "positions must be strictly increasing (at {p})");
            let gap = p - next;
            match short.get_mut(gap) {
                Some(count) => *count += 1,
                None => long.push(gap),
            }
            next = p + 1;
        }
        GapHistogram { short, long }
    }

    /// The number of gap symbols over `alphabet` and how often each symbol
    /// occurs: the histogram of [`positions_to_gaps`]`(positions, alphabet)`.
    fn symbols(&self, alphabet: u32) -> (u64, Vec<u64>) {
        let skip = alphabet as usize - 1;
        let mut freqs = vec![0u64; alphabet as usize];
        let gaps = self.short.iter().enumerate().map(|(g, &n)| (g, n));
        for (gap, n) in gaps.chain(self.long.iter().map(|&g| (g, 1))) {
            freqs[skip] += (gap / skip) as u64 * n;
            freqs[gap % skip] += n;
        }
        (freqs.iter().sum(), freqs)
    }
}
