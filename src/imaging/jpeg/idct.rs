//! libjpeg's "islow" inverse DCT (`jidctint.c`): dequantisation, a 2-D
//! 8x8 IDCT in 13-bit fixed point (columns, then rows) and libjpeg's range
//! limiting, reproduced exactly.

/// Fractional bits of the fixed-point constants.
const CONST_BITS: u32 = 13;
/// Extra precision kept between the two passes.
const PASS1_BITS: u32 = 2;

const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

/// Divide by `2^n`, rounding half up (libjpeg's `DESCALE`).
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit: the IDCT value is centred on 0; it is
/// taken modulo 1024 and mapped to 0..=255 so that moderate overshoots
/// clamp (and wild ones from corrupt data wrap, as in libjpeg).
fn range_limit(x: i64) -> u8 {
    match (x & 1023) as u16 {
        i @ 0..=127 => (i + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        i => (i - 896) as u8,
    }
}

/// One 1-D 8-point IDCT, shared by both passes: `input(k)` is coefficient
/// `k` and the result is the 8 outputs before descaling.
fn idct_1d(input: impl Fn(usize) -> i64) -> [i64; 8] {
    // Even part.
    let (z2, z3) = (input(2), input(6));
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (input(0) + input(4)) << CONST_BITS;
    let tmp1 = (input(0) - input(4)) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (mut t0, mut t1, mut t2, mut t3) = (input(7), input(5), input(3), input(1));
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * FIX_1_175875602;
    t0 *= FIX_0_298631336;
    t1 *= FIX_2_053119869;
    t2 *= FIX_3_072711026;
    t3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    t0 += z1 + z3;
    t1 += z2 + z4;
    t2 += z2 + z3;
    t3 += z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Dequantise `coefficients` (natural order, as libjpeg stores them: 16-bit)
/// with `quant` and write the 8x8 samples to `out` (row stride `stride`).
pub fn islow(coefficients: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    // libjpeg multiplies 16-bit coefficients by 16-bit table entries.
    let dequantized: [i64; 64] =
        std::array::from_fn(|i| i64::from(i32::from(coefficients[i]) * i32::from(quant[i] as i16)));
    // Pass 1: columns, kept in an `int` workspace scaled by 2^PASS1_BITS.
    let mut workspace = [0i32; 64];
    // Like libjpeg, columns and rows whose AC terms are all zero take a
    // shortcut; it gives exactly what the full computation would.
    for col in 0..8 {
        if (1..8).all(|k| dequantized[k * 8 + col] == 0) {
            let dc = (dequantized[col] << PASS1_BITS) as i32;
            (0..8).for_each(|row| workspace[row * 8 + col] = dc);
            continue;
        }
        let column = idct_1d(|k| dequantized[k * 8 + col]);
        for (row, v) in column.iter().enumerate() {
            workspace[row * 8 + col] = descale(*v, CONST_BITS - PASS1_BITS) as i32;
        }
    }
    // Pass 2: rows, descaled by 8 and the pass-1 scaling.
    for (row, samples) in workspace.chunks_exact(8).enumerate() {
        let out = &mut out[row * stride..][..8];
        if samples[1..].iter().all(|&v| v == 0) {
            out.fill(range_limit(descale(i64::from(samples[0]), PASS1_BITS + 3)));
            continue;
        }
        let line = idct_1d(|k| i64::from(samples[k]));
        for (o, v) in out.iter_mut().zip(line) {
            *o = range_limit(descale(v, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zero-AC shortcuts must not change any result: compare against
    /// the plain two-pass formula on blocks with and without zero columns.
    #[test]
    fn shortcuts_match_the_full_computation() {
        let full = |coefficients: &[i16; 64], quant: &[u16; 64]| -> [u8; 64] {
            let d: [i64; 64] =
                std::array::from_fn(|i| i64::from(coefficients[i]) * i64::from(quant[i]));
            let mut ws = [0i64; 64];
            for col in 0..8 {
                for (row, v) in idct_1d(|k| d[k * 8 + col]).iter().enumerate() {
                    ws[row * 8 + col] = descale(*v, CONST_BITS - PASS1_BITS);
                }
            }
            std::array::from_fn(|i| {
                range_limit(descale(
                    idct_1d(|k| ws[i / 8 * 8 + k])[i % 8],
                    CONST_BITS + PASS1_BITS + 3,
                ))
            })
        };
        let mut state = 12345u32;
        for sparsity in [0, 2, 5, 9] {
            for _ in 0..200 {
                let coefficients: [i16; 64] = std::array::from_fn(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    if (state >> 16) % 10 < sparsity {
                        0
                    } else {
                        ((state >> 8) % 64) as i16 - 32
                    }
                });
                let quant: [u16; 64] = std::array::from_fn(|i| 1 + (i as u16 % 7));
                let mut out = [0u8; 64];
                islow(&coefficients, &quant, &mut out, 8);
                assert_eq!(out, full(&coefficients, &quant));
            }
        }
    }

    #[test]
    fn dc_only_block_is_flat() {
        // A DC of 8 * 10 (dequantised) is +10 over mid-grey on every sample.
        let mut coefficients = [0i16; 64];
        coefficients[0] = 8;
        let mut quant = [1u16; 64];
        quant[0] = 10;
        let mut out = [0u8; 64];
        islow(&coefficients, &quant, &mut out, 8);
        assert!(out.iter().all(|&v| v == 138), "{out:?}");
    }

    #[test]
    fn matches_a_floating_point_idct_within_one_level() {
        let mut coefficients = [0i16; 64];
        for (i, c) in coefficients.iter_mut().enumerate() {
            *c = ((i * 37 % 17) as i16 - 8) * if i < 10 { 6 } else { 1 };
        }
        let quant = [3u16; 64];
        let mut out = [0u8; 64];
        islow(&coefficients, &quant, &mut out, 8);
        let c = |u: usize| {
            if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            }
        };
        for y in 0..8 {
            for x in 0..8 {
                let mut sum = 0.0;
                for v in 0..8 {
                    for u in 0..8 {
                        let coef = f64::from(coefficients[v * 8 + u]) * 3.0;
                        sum += c(u)
                            * c(v)
                            * coef
                            * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos()
                            * ((2 * y + 1) as f64 * v as f64 * std::f64::consts::PI / 16.0).cos();
                    }
                }
                let exact = (sum / 4.0 + 128.0).clamp(0.0, 255.0);
                assert!(
                    (f64::from(out[y * 8 + x]) - exact).abs() <= 1.0,
                    "({x},{y}): {} vs {exact}",
                    out[y * 8 + x]
                );
            }
        }
    }
}
