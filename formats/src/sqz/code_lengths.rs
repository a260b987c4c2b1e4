//! The code length table of a Huffman-coded stream (`SQZ.md`, "Code length
//! table"), in whichever of two forms is smaller: fixed-width fields, or
//! Elias-gamma-coded differences between neighbouring lengths, which is
//! about half the size for codebooks sorted by value (whose neighbouring
//! symbols have similar frequencies).

use super::coding::{BitReader, BitWriter};
use super::wire::Reader;
use super::MAX_CODE_LENGTH;
use crate::Result;

/// Coding byte of a Huffman stream whose table has fixed-width fields; the
/// low bits hold the width.
pub(crate) const FIXED: u8 = 0x80;
/// Coding byte of a Huffman stream whose table holds gamma-coded deltas.
pub(crate) const DELTA: u8 = 0xC0;
/// Widest fixed-width field a reader accepts: 5 bits hold 24.
const MAX_WIDTH: u8 = 5;

/// Append the coding byte and table for `lengths`, choosing the smaller
/// form (fixed-width on a tie).
pub(crate) fn encode(lengths: &[u8], out: &mut Vec<u8>) {
    let width = u8::BITS - lengths.iter().copied().max().unwrap_or(0).leading_zeros();
    let mut bits = BitWriter::with_capacity(lengths.len());
    lengths.iter().for_each(|&l| bits.write(l.into(), width));
    let fixed = bits.finish();
    let mut bits = BitWriter::with_capacity(lengths.len() / 4);
    let mut previous = 0;
    for &l in lengths {
        put_gamma(&mut bits, zigzag(i32::from(l) - previous) + 1);
        previous = l.into();
    }
    let delta = bits.finish();
    if delta.len() < fixed.len() {
        out.push(DELTA);
        out.extend(delta);
    } else {
        out.push(FIXED | width as u8);
        out.extend(fixed);
    }
}

/// Read the table of `alphabet` lengths that follows coding byte `coding`
/// (`FIXED | width` or `DELTA`). Fixed-width fields wider than 5 bits, and
/// deltas leading outside `0..=24`, are rejected.
pub(crate) fn decode(r: &mut Reader, coding: u8, alphabet: usize, what: &str) -> Result<Vec<u8>> {
    if coding == DELTA {
        // Every gamma code takes at least one bit.
        return r.bits(what, alphabet as u128, |bits| {
            let mut previous = 0i32;
            (0..alphabet)
                .map(|_| {
                    let length = previous + unzigzag(read_gamma(bits)? - 1);
                    if !(0..=i32::from(MAX_CODE_LENGTH)).contains(&length) {
                        return Err(format!(
                            "code length {length} is outside 0..={MAX_CODE_LENGTH}"
                        ));
                    }
                    previous = length;
                    Ok(length as u8)
                })
                .collect()
        });
    }
    let width = coding & !FIXED;
    if width > MAX_WIDTH {
        return Err(r.invalid(format!("{what}: field width {width} exceeds {MAX_WIDTH}")));
    }
    r.bits(what, alphabet as u128 * u128::from(width), |bits| {
        Ok((0..alphabet)
            .map(|_| bits.read(width.into()) as u8)
            .collect())
    })
}

/// Zigzag map of a difference: 0, -1, 1, -2, 2, ... to 0, 1, 2, 3, 4, ...
fn zigzag(d: i32) -> u32 {
    if d >= 0 {
        2 * d as u32
    } else {
        2 * d.unsigned_abs() - 1
    }
}

fn unzigzag(z: u32) -> i32 {
    match z % 2 {
        0 => (z / 2) as i32,
        _ => -(z.div_ceil(2) as i32),
    }
}

/// Elias gamma code of `n ≥ 1`: `floor(log2 n)` zero bits, then `n` in
/// binary (whose leading bit is 1).
fn put_gamma(bits: &mut BitWriter, n: u32) {
    let magnitude = u32::BITS - 1 - n.leading_zeros();
    bits.write(0, magnitude);
    bits.write(n, magnitude + 1);
}

/// Read an Elias gamma code. Valid tables need at most 5 leading zeros
/// (a delta of ±24 is `n` ≤ 49); more is rejected.
fn read_gamma(bits: &mut BitReader) -> std::result::Result<u32, String> {
    let mut zeros = 0;
    while bits.read(1) == 0 {
        zeros += 1;
        if zeros > 5 {
            return Err("a gamma code longer than any code length delta".to_string());
        }
    }
    Ok((1 << zeros) | bits.read(zeros))
}
