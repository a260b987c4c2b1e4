//! k-means weight sharing of a whole [`Model`], with per-layer bit widths.
//!
//! Every layer's nonzero weights are clustered with 1-D k-means and each is
//! replaced by its centroid, in place, so the result can be evaluated
//! directly by the engine and is then stored losslessly by
//! [`formats::sqz::encode_model`]. Pruned zeros stay out of the clustering and stay
//! zero. The numerical work is [`compress::kmeans`]'s.

use compress::kmeans::{Init, SortedValues};
use formats::Model;
use half::f16;
use rayon::prelude::*;

use super::defaults;
use super::params::{Bits, LayerOverrides};

/// How k-means finds each layer's shared values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeans {
    /// Centroid initialisation.
    pub init: Init,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Price of a bit of code length in entropy-constrained k-means, in
    /// mean squared errors per weight
    /// ([`SortedValues::entropy_constrained`]); 0 is plain k-means, the
    /// paper's.
    pub entropy_weight: f64,
}

impl Default for KMeans {
    /// [`defaults::KMEANS_INIT`], [`defaults::KMEANS_MAX_ITER`] and
    /// [`defaults::ENTROPY_WEIGHT`].
    fn default() -> Self {
        KMeans {
            init: defaults::KMEANS_INIT,
            max_iter: defaults::KMEANS_MAX_ITER,
            entropy_weight: defaults::ENTROPY_WEIGHT,
        }
    }
}

impl KMeans {
    /// The defaults with [`defaults::TARGET_SIZE_ENTROPY_WEIGHT`], for
    /// bit widths chosen by a size budget.
    pub fn for_target_size() -> Self {
        KMeans {
            entropy_weight: defaults::TARGET_SIZE_ENTROPY_WEIGHT,
            ..KMeans::default()
        }
    }
}

/// How to share weights: bits per layer and the k-means settings.
#[derive(Debug, Clone)]
pub struct QuantizeSpec {
    /// Codebook index width: a layer gets `2^bits` shared values, or
    /// `2^bits - 1` plus the pruned zero when it is sparse.
    pub bits: Bits,
    /// Layers with their own width.
    pub per_layer: LayerOverrides<Bits>,
    /// How k-means finds the shared values.
    pub kmeans: KMeans,
}

impl QuantizeSpec {
    /// `bits` for every layer.
    pub fn uniform(bits: Bits, kmeans: KMeans) -> Self {
        QuantizeSpec {
            bits,
            per_layer: LayerOverrides::new(),
            kmeans,
        }
    }

    /// Bits of the layer called `name`.
    pub fn bits_for(&self, name: &str) -> Bits {
        self.per_layer.get(name).copied().unwrap_or(self.bits)
    }
}

/// Replace every layer's nonzero weights by the nearest of its k-means
/// shared values, in place; with `half`, the shared values and biases are
/// rounded to float16 so the container stores them at half size.
pub fn quantize_model(model: &mut Model, spec: &QuantizeSpec, half: bool) {
    model.layers.par_iter_mut().for_each(|layer| {
        let codebook = shared_values(
            &layer.weights,
            spec.bits_for(&layer.name),
            &spec.kmeans,
            half,
        );
        share_weights(layer, &codebook, half);
    });
}

/// Set every nonzero weight of `layer` to the nearest value of `codebook`
/// and, with `half`, round its biases to float16.
pub fn share_weights(layer: &mut formats::Layer, codebook: &[f32], half: bool) {
    assign_nearest(&mut layer.weights, codebook);
    if half {
        round_biases_half(layer);
    }
}

/// The shared nonzero values of a layer: (entropy-constrained) k-means
/// over its nonzero weights with at most `2^bits` clusters, or
/// `2^bits - 1` when the layer is sparse (the pruned zero takes the last
/// code). Ascending, without zero, rounded to float16 with `half`.
pub fn shared_values(weights: &[f32], bits: Bits, kmeans: &KMeans, half: bool) -> Vec<f32> {
    NonzeroWeights::new(weights).shared_values(bits, kmeans, half)
}

/// A layer's nonzero weights sorted once, for its shared values at
/// several bit widths ([`super::allocation::cost_table`] tries every
/// width of the ladder on every layer).
pub struct NonzeroWeights {
    sorted: SortedValues,
    /// Whether the layer has pruned (zero) weights.
    sparse: bool,
}

impl NonzeroWeights {
    /// Collect and sort the nonzero values of `weights`.
    pub fn new(weights: &[f32]) -> Self {
        let nonzero: Vec<f32> = weights.iter().copied().filter(|w| *w != 0.0).collect();
        NonzeroWeights {
            sparse: nonzero.len() < weights.len(),
            sorted: SortedValues::new(&nonzero),
        }
    }

    /// [`shared_values`] of the layer at `bits`.
    pub fn shared_values(&self, bits: Bits, kmeans: &KMeans, half: bool) -> Vec<f32> {
        let k = ((1usize << bits.get()) - usize::from(self.sparse)).max(1);
        let mut codebook =
            self.sorted
                .entropy_constrained(k, kmeans.init, kmeans.max_iter, kmeans.entropy_weight);
        if half {
            codebook.iter_mut().for_each(|c| *c = round_half(*c));
        }
        codebook.dedup();
        codebook.retain(|c| *c != 0.0);
        codebook
    }
}

/// Set every nonzero weight to the nearest value of the ascending
/// `codebook` (ties to the lower value); zeros stay zero.
pub fn assign_nearest(weights: &mut [f32], codebook: &[f32]) {
    if codebook.is_empty() {
        return;
    }
    for w in weights.iter_mut().filter(|w| **w != 0.0) {
        let i = codebook.partition_point(|c| c < w);
        *w = match (i.checked_sub(1).map(|j| codebook[j]), codebook.get(i)) {
            (Some(lo), Some(&hi)) => {
                if *w - lo <= hi - *w {
                    lo
                } else {
                    hi
                }
            }
            (Some(lo), None) => lo,
            (None, Some(&hi)) => hi,
            (None, None) => unreachable!("codebook is not empty"),
        };
    }
}

/// Round every weight and bias of `model` to the nearest float16 value, so
/// the container stores them at half size (used without quantization).
pub fn round_model_half(model: &mut Model) {
    model.layers.par_iter_mut().for_each(|layer| {
        layer.weights.iter_mut().for_each(|w| *w = round_half(*w));
        round_biases_half(layer);
    });
}

/// Round a layer's biases to the nearest float16 values.
pub fn round_biases_half(layer: &mut formats::Layer) {
    layer.bias.iter_mut().for_each(|b| *b = round_half(*b));
}

/// The nearest float16 value of `x`, as float32.
fn round_half(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_value_with_ties_to_the_lower_and_zeros_kept() {
        let tiny = 0.0f32.next_up();
        let mut weights = [0.0, -5.0, 0.25, 0.5, 0.75, 1.0, 9.0, -0.0];
        assign_nearest(&mut weights, &[-1.0, tiny, 1.0]);
        assert_eq!(weights, [0.0, -1.0, tiny, tiny, 1.0, 1.0, 1.0, -0.0]);
    }
}
