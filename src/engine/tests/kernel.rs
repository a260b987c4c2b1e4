//! The micro-kernel against a plain sum, on every block shape it takes.

use proptest::prelude::*;

use super::Values;
use crate::engine::kernel::{Kernel, Panel, MR, NR};

/// `start + sum_k weights[k][r] * panel[k][j]`, then ReLU if asked.
fn plain(weights: &[f32], panel: Panel<'_>, start: f32, r: usize, j: usize, relu: bool) -> f32 {
    let sum = (0..panel.depth).fold(start, |acc, k| {
        acc + weights[k * MR + r] * panel.values[k * panel.stride + j]
    });
    if relu {
        sum.max(0.0)
    } else {
        sum
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn blocks_of_any_shape_match_a_plain_sum(
        depth in 1usize..300, rows in 1usize..=MR, cols in 1usize..=NR,
        gap in 0usize..40, from_output: bool, relu: bool, seed: u64,
    ) {
        let Some(kernel) = Kernel::detect() else {
            eprintln!("no AVX-512 here: the micro-kernel is not used on this CPU");
            return Ok(());
        };
        let mut values = Values::new(seed);
        let weights = values.vec(depth * MR);
        // Rows `cols + gap` apart, as a 1x1 convolution's image is read,
        // and not one value more than the block's columns need.
        let stride = cols + gap;
        let panel_values = values.vec((depth - 1) * stride + cols);
        let panel = Panel { values: &panel_values, stride, depth };
        let bias: [f32; MR] = values.vec(MR).try_into().unwrap();
        // Rows one longer than needed: the kernel must not write past `cols`.
        let initial: Vec<Vec<f32>> = (0..rows).map(|_| values.vec(cols + 1)).collect();
        let mut out = initial.clone();
        let mut views: Vec<&mut [f32]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        let start = (!from_output).then_some(&bias);
        kernel.block(&weights, panel, start, relu, &mut views, cols);
        for r in 0..rows {
            for j in 0..cols {
                let first = if from_output { initial[r][j] } else { bias[r] };
                let expected = plain(&weights, panel, first, r, j, relu);
                prop_assert!((out[r][j] - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                    "row {r} column {j}: {} vs {expected}", out[r][j]);
            }
            prop_assert_eq!(out[r][cols], initial[r][cols]);
        }
    }
}
