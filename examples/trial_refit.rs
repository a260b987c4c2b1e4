//! What the cheap pruning trials of wide layers cost in accuracy, on a
//! network where the exact ones run too.
//!
//! Sensitivity analysis prunes a trial layer and refits its survivors
//! exactly by least squares, except on layers whose exact refit would cost
//! more than `exact_refit_limit` (VGG-16's classifier), where it keeps the
//! weights SparseGPT's sweep left instead. No SqueezeNet layer reaches the
//! limit, so this measures the pruning sensitivity of MODEL twice on N
//! calibration images, once with the default limit (every layer exact) and
//! once with a limit of zero (every layer swept), and prints per sparsity
//! level the Spearman rank correlation across layers of the two damages
//! (mean KL divergence), what the ranking of layers the allocation uses
//! rests on, and the median ratio of swept to exact damage.
//!
//! `cargo run --release --example trial_refit -- MODEL IMAGES N`

use std::path::PathBuf;

use anyhow::Context;
use formats::{read_model, ReadOptions};
use sqz::pipeline::calib_images::CalibrationImages;
use sqz::pipeline::calibration::CalibrationOptions;
use sqz::pipeline::defaults;
use sqz::pipeline::sensitivity::{
    default_sparsity_ladder, measure_sensitivity, Ladder, Sensitivity, SensitivityOptions,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, images, count] = args.as_slice() else {
        anyhow::bail!("usage: trial_refit MODEL IMAGES N");
    };
    let model = read_model(&PathBuf::from(model), &ReadOptions::default())?;
    let images = CalibrationImages {
        dir: images.into(),
        count: count.parse().context("N")?,
    };
    let batch = images.load(&model, images.count)?;
    let measure = |limit: f64| -> anyhow::Result<Sensitivity> {
        let options = SensitivityOptions {
            exact_refit_limit: limit,
            ..SensitivityOptions::new(
                Ladder::pruning(default_sparsity_ladder())?,
                CalibrationOptions::default(),
            )
        };
        Ok(measure_sensitivity(&model, &batch, &options, &mut |_| {})?)
    };
    let exact = measure(defaults::SENSITIVITY_EXACT_REFIT_WORK)?;
    let swept = measure(0.0)?;
    for (level, sparsity) in exact.ladder.sparsities.iter().enumerate() {
        let kl =
            |s: &Sensitivity| -> Vec<f64> { s.layers.iter().map(|l| l.prune[level].kl).collect() };
        let (a, b) = (kl(&exact), kl(&swept));
        let mut ratios: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| y / x)
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "sparsity {:.1}: Spearman {:.3} over {} layers, median KL swept/exact {:.2} (range {:.2}-{:.2})",
            sparsity.get(),
            spearman(&a, &b),
            a.len(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    Ok(())
}

/// Spearman's rank correlation (ranks by value, ties broken by position).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let cov: f64 = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| (x - mean) * (y - mean))
        .sum();
    let var: f64 = ra.iter().map(|x| (x - mean).powi(2)).sum();
    cov / var
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    for (rank, i) in order.into_iter().enumerate() {
        ranks[i] = rank as f64;
    }
    ranks
}
