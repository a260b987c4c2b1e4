//! Asymmetric calibration ([`compress::calib::retarget`]) on a synthetic
//! layer whose "compressed network" inputs are the original ones with a
//! per-feature gain, an offset and noise, as errors of the layers below
//! would leave them: the retargeted weights are the least-squares fit to
//! the original outputs, change nothing when both inputs agree, keep an
//! existing mask, and the bias matches the original mean output.

use compress::calib::{
    correct_bias_to_original, output_error, retarget, retarget_in_place, CalibError, Hessian,
    PairMoments,
};
use compress::rng::SplitMix64;

use super::calib::{on_1_2_and_5_threads, zeros, Layer};

/// The original inputs of `layer` disturbed as a compressed network's:
/// `x_c = g ⊙ x_o + o + ε`, gains `g` in `[0.7, 1.3]`, offsets `o` and
/// noise `ε` of 0.1 and 0.2 times each feature's spread.
fn disturbed(layer: &Layer, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let n = layer.n;
    let mut out = layer.columns.clone();
    for row in out.chunks_exact_mut(n) {
        let spread = (row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n as f64).sqrt();
        let gain = 0.7 + 0.6 * rng.next_f64();
        let offset = 0.1 * spread * rng.gaussian();
        for v in row.iter_mut() {
            *v = (gain * f64::from(*v) + offset + 0.2 * spread * rng.gaussian()) as f32;
        }
    }
    out
}

/// The Hessian of `compressed` and its pair moments with the layer's own
/// (original) columns.
fn pairs(layer: &Layer, compressed: &[f32]) -> (Hessian, PairMoments) {
    let mut h = Hessian::new(layer.dim).unwrap();
    h.accumulate(compressed, layer.n).unwrap();
    let mut p = PairMoments::new(layer.dim).unwrap();
    p.accumulate(compressed, &layer.columns, layer.n).unwrap();
    (h, p)
}

/// `‖Ŵ X_c − W X_o‖²` from the activations, in `f64`.
fn asymmetric_error(layer: &Layer, compressed_inputs: &[f32], w_hat: &[f32]) -> f64 {
    let (d, n) = (layer.dim, layer.n);
    let mut total = 0.0;
    for r in 0..layer.rows {
        for c in 0..n {
            let y: f64 = (0..d)
                .map(|j| {
                    f64::from(w_hat[r * d + j]) * f64::from(compressed_inputs[j * n + c])
                        - f64::from(layer.weights[r * d + j]) * f64::from(layer.columns[j * n + c])
                })
                .sum();
            total += y * y;
        }
    }
    total
}

#[test]
fn retarget_is_the_least_squares_fit_to_the_original_outputs() {
    let layer = Layer::new(10, 24, 2000, 8, true, 300);
    let xc = disturbed(&layer, 301);
    let (h, p) = pairs(&layer, &xc);
    let fitted = retarget(&layer.weights, layer.rows, &h, &p, 1e-6).unwrap();
    let before = asymmetric_error(&layer, &xc, &layer.weights);
    let after = asymmetric_error(&layer, &xc, &fitted);
    println!("output error against the original: {before:.4e} kept, {after:.4e} retargeted");
    assert!(after < 0.7 * before, "{after} vs {before}");
    // A least-squares optimum: moving any one weight either way is worse.
    for (r, j) in [(0, 0), (3, 7), (9, 23)] {
        for step in [-1e-3f32, 1e-3] {
            let mut moved = fitted.clone();
            moved[r * layer.dim + j] += step;
            assert!(asymmetric_error(&layer, &xc, &moved) > after * (1.0 - 1e-9));
        }
    }
}

#[test]
fn retarget_changes_nothing_when_both_networks_agree() {
    let layer = Layer::new(8, 20, 800, 6, true, 310);
    let (h, p) = pairs(&layer, &layer.columns);
    let fitted = retarget(&layer.weights, layer.rows, &h, &p, 0.01).unwrap();
    for (a, b) in layer.weights.iter().zip(&fitted) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1e-3), "{a} vs {b}");
    }
}

#[test]
fn retarget_in_place_keeps_existing_zeros_and_fits_the_rest() {
    let layer = Layer::new(10, 24, 2000, 8, true, 320);
    let xc = disturbed(&layer, 321);
    let (h, p) = pairs(&layer, &xc);
    let pruned = layer.magnitude_pruned(0.5);
    let mut w = pruned.clone();
    retarget_in_place(&mut w, layer.rows, &h, &p, 0.01).unwrap();
    let same_zeros = pruned
        .iter()
        .zip(&w)
        .all(|(a, b)| (*a == 0.0) == (*b == 0.0));
    assert!(same_zeros && zeros(&w) == zeros(&pruned));
    let before = asymmetric_error(&layer, &xc, &pruned);
    let after = asymmetric_error(&layer, &xc, &w);
    println!("pruned layer against the original: {before:.4e} masked, {after:.4e} retargeted");
    assert!(after < before, "{after} vs {before}");
}

#[test]
fn bias_to_original_matches_the_original_mean_output() {
    let layer = Layer::new(6, 16, 1500, 6, true, 330);
    let xc = disturbed(&layer, 331);
    let (h, p) = pairs(&layer, &xc);
    let (rows, d, n) = (layer.rows, layer.dim, layer.n);
    // Any compressed weights: every other weight dropped.
    let w_hat: Vec<f32> = layer
        .weights
        .iter()
        .enumerate()
        .map(|(i, w)| if i % 2 == 0 { *w } else { 0.0 })
        .collect();
    let bias = vec![0.25f32; rows];
    let mut corrected = bias.clone();
    correct_bias_to_original(&mut corrected, &layer.weights, &w_hat, rows, &h, &p).unwrap();
    for r in 0..rows {
        let mean = |w: &[f32], x: &[f32], b: f32| {
            let total: f64 = (0..n)
                .map(|c| {
                    (0..d)
                        .map(|j| f64::from(w[r * d + j]) * f64::from(x[j * n + c]))
                        .sum::<f64>()
                })
                .sum();
            total / n as f64 + f64::from(b)
        };
        let original = mean(&layer.weights, &layer.columns, bias[r]);
        let compressed = mean(&w_hat, &xc, corrected[r]);
        assert!(
            (original - compressed).abs() <= 1e-5 * original.abs().max(1.0),
            "row {r}: {original} vs {compressed}"
        );
    }
    // Output error measured the symmetric way is defined for the result.
    assert!(output_error(&layer.weights, &w_hat, rows, &h).unwrap() > 0.0);
}

#[test]
fn pair_moments_do_not_depend_on_the_thread_count() {
    let layer = Layer::new(12, 30, 3000, 8, true, 340);
    let xc = disturbed(&layer, 341);
    let run = || {
        let (h, p) = pairs(&layer, &xc);
        let fitted = retarget(&layer.weights, layer.rows, &h, &p, 0.01).unwrap();
        fitted.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
    };
    let results = on_1_2_and_5_threads(&run);
    assert!(results[1] == results[0] && results[2] == results[0]);
}

#[test]
fn bad_pair_input_is_an_error() {
    let layer = Layer::new(4, 6, 50, 6, true, 350);
    let h = layer.hessian();
    let mut p = PairMoments::new(layer.dim).unwrap();
    assert!(matches!(
        PairMoments::new(0).unwrap_err(),
        CalibError::Dim { .. }
    ));
    assert!(matches!(
        p.accumulate(&layer.columns, &layer.columns[1..], layer.n)
            .unwrap_err(),
        CalibError::Length { .. }
    ));
    p.accumulate(&layer.columns, &layer.columns, layer.n)
        .unwrap();
    assert!(matches!(
        p.merge(&PairMoments::new(7).unwrap()).unwrap_err(),
        CalibError::DimMismatch { .. }
    ));
    assert!(matches!(
        retarget(&layer.weights[1..], layer.rows, &h, &p, 0.01).unwrap_err(),
        CalibError::Length { .. }
    ));
    let mut nan = layer.weights.clone();
    nan[2] = f32::NAN;
    let error = retarget(&nan, layer.rows, &h, &p, 0.01).unwrap_err();
    assert!(matches!(error, CalibError::NonFinite(_)));
    assert!(!error.to_string().contains('\n'));
    assert!(matches!(
        retarget(&layer.weights, layer.rows, &h, &p, -1.0).unwrap_err(),
        CalibError::Damp(_)
    ));
    // Pairs over other columns than the Hessian's.
    let mut other = Hessian::new(layer.dim).unwrap();
    other.accumulate(&vec![1.0; layer.dim * 3], 3).unwrap();
    assert!(matches!(
        retarget(&layer.weights, layer.rows, &other, &p, 0.01).unwrap_err(),
        CalibError::Length { what: "pairs", .. }
    ));
}
