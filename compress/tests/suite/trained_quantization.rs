//! Constraints of fine-tuning a compressed layer: masked gradients and the
//! gradients of shared values.

use compress::optim::{Method, Optimizer};
use compress::rng::SplitMix64;
use compress::trained_quantization::{PruneMask, SharedWeights};

/// 200 weights taking the values -0.3, -0.1, 0.2, 0.5 or zero (pruned).
fn quantized_layer(seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let palette = [0.0, -0.3, -0.1, 0.2, 0.5];
    (0..200).map(|_| palette[rng.below(5) as usize]).collect()
}

fn gradient(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.gaussian() as f32).collect()
}

#[test]
fn masked_training_keeps_pruned_weights_exactly_zero() {
    let mut weights = quantized_layer(1);
    let mask = PruneMask::from_weights(&weights);
    let zeros: Vec<bool> = weights.iter().map(|&w| w == 0.0).collect();
    assert!(zeros.iter().any(|&z| z) && !zeros.iter().all(|&z| z));
    let adam = Optimizer {
        method: Method::adam(),
        weight_decay: 1e-3,
    };
    let mut state = adam.state(weights.len());
    for step in 0..20 {
        let mut g = gradient(weights.len(), 10 + step);
        mask.apply(&mut g);
        adam.step(&mut state, &mut weights, &g, 0.01);
    }
    for (i, (w, was_zero)) in weights.iter().zip(&zeros).enumerate() {
        assert_eq!(*w == 0.0, *was_zero, "weight {i} = {w}");
    }
}

#[test]
fn shared_values_are_the_distinct_nonzero_weights() {
    let weights = quantized_layer(2);
    let shared = SharedWeights::from_weights(&weights);
    assert_eq!(shared.values(), [-0.3, -0.1, 0.2, 0.5]);
    let mut rebuilt = vec![1.0; weights.len()];
    shared.write_weights(&mut rebuilt);
    assert_eq!(rebuilt, weights);
}

#[test]
fn value_gradient_is_the_sum_over_each_values_members() {
    let weights = quantized_layer(3);
    let shared = SharedWeights::from_weights(&weights);
    let g = gradient(weights.len(), 4);
    let sums = shared.value_gradient(&g);
    for (value, sum) in shared.values().iter().zip(&sums) {
        let expected: f64 = weights
            .iter()
            .zip(&g)
            .filter(|(w, _)| *w == value)
            .map(|(_, g)| f64::from(*g))
            .sum();
        assert!(
            (f64::from(*sum) - expected).abs() < 1e-5,
            "{value}: {sum} vs {expected}"
        );
    }
}

#[test]
fn training_shared_values_keeps_clusters_and_zeros() {
    let weights = quantized_layer(5);
    let mut shared = SharedWeights::from_weights(&weights);
    let sgd = Optimizer {
        method: Method::Sgd { momentum: 0.9 },
        weight_decay: 0.0,
    };
    let mut state = sgd.state(shared.values().len());
    let mut trained = weights.clone();
    for step in 0..10 {
        let g = shared.value_gradient(&gradient(weights.len(), 20 + step));
        sgd.step(&mut state, shared.values_mut(), &g, 0.01);
    }
    shared.write_weights(&mut trained);
    assert_ne!(trained, weights);
    // Weights that shared a value still share one; zeros are still zero.
    for (i, (a, b)) in weights.iter().zip(&trained).enumerate() {
        assert_eq!(*a == 0.0, *b == 0.0, "weight {i}");
        for (c, d) in weights.iter().zip(&trained) {
            assert_eq!(a == c, b == d);
        }
    }
}
