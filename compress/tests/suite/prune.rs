//! Magnitude pruning: exact target counts, smallest-first order, existing
//! zeros, tie-breaking, and the global threshold.

use compress::prune::{global_threshold, prune_below, prune_layer};
use compress::rng::SplitMix64;
use proptest::prelude::*;

fn gaussian_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.gaussian() * 0.05) as f32).collect()
}

fn zeros(weights: &[f32]) -> usize {
    weights.iter().filter(|w| **w == 0.0).count()
}

#[test]
fn hits_the_requested_sparsity_exactly() {
    // Targets whose products with 1000 are whole numbers in decimal.
    for (sparsity, expected) in [
        (0.0, 0),
        (0.1, 100),
        (0.25, 250),
        (0.5, 500),
        (0.7, 700),
        (0.9, 900),
        (1.0, 1000),
    ] {
        let mut w = gaussian_weights(1000, 1);
        let stats = prune_layer(&mut w, sparsity);
        assert_eq!(
            (stats.total, stats.zeros),
            (1000, expected),
            "sparsity {sparsity}"
        );
        assert_eq!(zeros(&w), expected);
    }
    // 0.7 · 10 is 7.000000000000001 in floating point, but means 7.
    let mut w = gaussian_weights(10, 2);
    assert_eq!(prune_layer(&mut w, 0.7).zeros, 7);
    // "At least" the target: half of 7 weights is 3.5, so 4.
    let mut w = gaussian_weights(7, 3);
    assert_eq!(prune_layer(&mut w, 0.5).zeros, 4);
}

proptest! {
    #[test]
    fn prunes_exactly_the_smallest(n in 0usize..3000, sparsity in 0.0f64..=1.0, seed in any::<u64>()) {
        let original = gaussian_weights(n, seed);
        let mut w = original.clone();
        let stats = prune_layer(&mut w, sparsity);
        prop_assert_eq!(stats.zeros, zeros(&w));
        prop_assert!(stats.sparsity() >= sparsity - 1e-9 || n == 0);
        // One fewer zero would miss the target.
        if stats.zeros > 0 {
            prop_assert!(((stats.zeros - 1) as f64) < sparsity * n as f64);
        }
        let largest_pruned = original.iter().zip(&w).filter(|(_, p)| **p == 0.0).map(|(o, _)| o.abs()).fold(0.0f32, f32::max);
        let smallest_kept = w.iter().filter(|p| **p != 0.0).map(|p| p.abs()).fold(f32::INFINITY, f32::min);
        prop_assert!(largest_pruned <= smallest_kept);
        for (o, p) in original.iter().zip(&w) {
            prop_assert!(*p == 0.0 || p == o, "kept weights are unchanged");
        }
    }

    #[test]
    fn global_threshold_hits_the_overall_target(
        sizes in prop::collection::vec(0usize..2000, 1..8),
        sparsity in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let mut layers: Vec<Vec<f32>> = sizes.iter().enumerate().map(|(i, &n)| gaussian_weights(n, seed ^ i as u64)).collect();
        // Layers of different scale end up with different sparsities.
        for (i, layer) in layers.iter_mut().enumerate() {
            layer.iter_mut().for_each(|w| *w *= (i + 1) as f32);
        }
        let total: usize = sizes.iter().sum();
        let threshold = global_threshold(&layers.iter().map(Vec::as_slice).collect::<Vec<_>>(), sparsity);
        let mut magnitudes: Vec<f32> = layers.iter().flatten().map(|w| w.abs()).collect();
        magnitudes.sort_by(f32::total_cmp);
        let pruned: usize = layers.iter_mut().map(|l| prune_below(l, threshold).zeros).sum();
        // The least count reaching the sparsity, plus any weights whose
        // magnitude ties with the last one pruned (scaled Gaussians can
        // tie exactly): they are pruned together.
        let target = (0..=total).find(|&z| z as f64 >= sparsity * total as f64 - 1e-9).unwrap_or(total);
        let ties = match target {
            0 => 0,
            t => magnitudes[t..].iter().take_while(|m| **m == magnitudes[t - 1]).count(),
        };
        prop_assert_eq!(pruned, target + ties);
    }
}

#[test]
fn existing_zeros_count_and_stay() {
    let mut w = gaussian_weights(100, 4);
    for i in (0..100).step_by(4) {
        w[i] = 0.0;
    }
    // 25 zeros already: a 10 % target removes nothing.
    let before = w.clone();
    assert_eq!(prune_layer(&mut w, 0.1).zeros, 25);
    assert_eq!(w, before);
    // A 40 % target removes 15 more, and the old zeros stay zero.
    assert_eq!(prune_layer(&mut w, 0.4).zeros, 40);
    assert!((0..100).step_by(4).all(|i| w[i] == 0.0));
    assert_eq!(zeros(&w), 40);
}

#[test]
fn ties_are_broken_by_index() {
    let mut w = vec![1.0f32, -1.0, 1.0, -1.0, 0.5, 2.0];
    prune_layer(&mut w, 0.5);
    assert_eq!(w, [0.0, 0.0, 1.0, -1.0, 0.0, 2.0]);
}

#[test]
fn invalid_sparsities_and_nan_weights() {
    let mut w = vec![0.3f32, f32::NAN, -0.1, 0.2];
    assert_eq!(prune_layer(&mut w, f64::NAN).zeros, 0);
    assert_eq!(prune_layer(&mut w, -1.0).zeros, 0);
    // NaN ranks above every magnitude, so it is the one weight left.
    assert_eq!(prune_layer(&mut w, 0.75).zeros, 3);
    assert!(w[1].is_nan());
    assert_eq!(prune_layer(&mut w, 2.0).zeros, 4);

    let layer = [1.0f32, f32::NAN];
    assert_eq!(global_threshold(&[&layer], 1.0), f32::INFINITY);
    assert_eq!(global_threshold(&[&layer], 0.0), 0.0);
    let mut copy = layer;
    assert_eq!(prune_below(&mut copy, f32::NAN).zeros, 0);
}

/// The radix selection prunes exactly the weights a sort by (magnitude,
/// index) puts first, on values with many ties, zeros and both signs,
/// across the 16-bit bucket boundaries of the keys.
#[test]
fn pruning_matches_sorting_by_magnitude_then_index() {
    let mut rng = SplitMix64::new(7);
    for (len, distinct) in [(1000, 7), (5000, 300), (20_000, 100_000)] {
        let weights: Vec<f32> = (0..len)
            .map(|_| {
                let v = (rng.next_f64() * distinct as f64).floor() as f32 / distinct as f32;
                if rng.next_f64() < 0.5 {
                    -v
                } else {
                    v
                }
            })
            .collect();
        for sparsity in [0.1, 0.5, 0.9, 0.999] {
            let mut expected = weights.clone();
            let mut order: Vec<usize> = (0..len).filter(|&i| weights[i] != 0.0).collect();
            order.sort_by_key(|&i| (weights[i].abs().to_bits(), i));
            let exact = sparsity * len as f64;
            let wanted = if (exact - exact.round()).abs() < 1e-6 {
                exact.round()
            } else {
                exact.ceil()
            };
            let target = (wanted as usize).max(zeros(&weights));
            let remove = target - zeros(&weights);
            order[..remove].iter().for_each(|&i| expected[i] = 0.0);
            let mut w = weights.clone();
            prune_layer(&mut w, sparsity);
            assert_eq!(
                w, expected,
                "{len} weights, {distinct} values, sparsity {sparsity}"
            );
        }
    }
}
