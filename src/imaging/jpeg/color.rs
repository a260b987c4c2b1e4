//! YCbCr -> RGB conversion exactly as libjpeg's `jdcolor.c`: per-value
//! tables in 16-bit fixed point, rounding Cr->R and Cb->B in advance and the
//! green sum once, then clamping to 0..=255.

/// Fractional bits of the fixed-point factors.
const SCALE_BITS: u32 = 16;
const ONE_HALF: i64 = 1 << (SCALE_BITS - 1);

/// libjpeg's `FIX(x)`: `x` in fixed point, rounded.
fn fix(x: f64) -> i64 {
    (x * f64::from(1u32 << SCALE_BITS) + 0.5) as i64
}

/// Interleave full-size Y, Cb and Cr planes into RGB.
pub fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8]) -> Vec<u8> {
    let table =
        |f: &dyn Fn(i64) -> i64| -> [i64; 256] { std::array::from_fn(|i| f(i as i64 - 128)) };
    let cr_r = table(&|x| (fix(1.40200) * x + ONE_HALF) >> SCALE_BITS);
    let cb_b = table(&|x| (fix(1.77200) * x + ONE_HALF) >> SCALE_BITS);
    let cr_g = table(&|x| -fix(0.71414) * x);
    let cb_g = table(&|x| -fix(0.34414) * x + ONE_HALF);
    let clamp = |v: i64| v.clamp(0, 255) as u8;
    let mut rgb = Vec::with_capacity(3 * y.len());
    for ((&y, &cb), &cr) in y.iter().zip(cb).zip(cr) {
        let (y, cb, cr) = (i64::from(y), usize::from(cb), usize::from(cr));
        rgb.extend([
            clamp(y + cr_r[cr]),
            clamp(y + ((cb_g[cb] + cr_g[cr]) >> SCALE_BITS)),
            clamp(y + cb_b[cb]),
        ]);
    }
    rgb
}
