//! Fine-tuning under Deep Compression's constraints (Han et al., Section
//! 3.3, "trained quantization"): pruned weights stay exactly zero, and once
//! weights are shared, every weight keeps its cluster and only the shared
//! values train.
//!
//! - [`PruneMask`] remembers which weights were pruned and zeroes their
//!   gradient, so an optimizer step cannot revive them.
//! - [`SharedWeights`] splits a quantized layer into fixed codes and
//!   trainable shared values; the gradient of a shared value is the sum of
//!   the gradients of the weights that use it.

/// The weights of a layer that were zero (pruned) when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneMask {
    pruned: Vec<bool>,
}

impl PruneMask {
    /// Which weights are pruned, in weight order.
    pub fn pruned(&self) -> &[bool] {
        &self.pruned
    }

    /// The mask of `weights`: every weight equal to zero is pruned.
    pub fn from_weights(weights: &[f32]) -> Self {
        PruneMask {
            pruned: weights.iter().map(|&w| w == 0.0).collect(),
        }
    }

    /// Set the gradient of every pruned weight to zero.
    ///
    /// # Panics
    ///
    /// If `gradient` is not as long as the weights the mask was made from.
    pub fn apply(&self, gradient: &mut [f32]) {
        assert_eq!(gradient.len(), self.pruned.len(), "gradient vs mask");
        for (g, &pruned) in gradient.iter_mut().zip(&self.pruned) {
            if pruned {
                *g = 0.0;
            }
        }
    }
}

/// Marks a pruned weight in [`SharedWeights`]: it uses no shared value.
const PRUNED: u32 = u32::MAX;

/// A layer whose nonzero weights take a few shared values: which value each
/// weight uses (fixed) and the values themselves (trainable).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWeights {
    /// Per weight, the index of its value, or [`PRUNED`].
    codes: Vec<u32>,
    /// The shared values, ascending at construction.
    values: Vec<f32>,
}

impl SharedWeights {
    /// Split quantized `weights`: their distinct nonzero values, ascending,
    /// become the shared values and every zero weight is pruned. Weights are
    /// finite (the caller validated the model).
    ///
    /// # Panics
    ///
    /// If there are `u32::MAX` or more distinct values.
    pub fn from_weights(weights: &[f32]) -> Self {
        let mut values: Vec<f32> = weights.iter().copied().filter(|&w| w != 0.0).collect();
        values.sort_by(f32::total_cmp);
        values.dedup();
        assert!(values.len() < PRUNED as usize, "too many shared values");
        let codes = weights
            .iter()
            .map(|w| match values.binary_search_by(|v| v.total_cmp(w)) {
                Ok(code) if *w != 0.0 => code as u32,
                _ => PRUNED,
            })
            .collect();
        SharedWeights { codes, values }
    }

    /// The shared values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The shared values, for an optimizer to update.
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// The gradient of each shared value: the sum, in weight order, of the
    /// gradients of the weights that use it (pruned weights contribute
    /// nothing).
    ///
    /// # Panics
    ///
    /// If `weight_gradient` is not one value per weight.
    pub fn value_gradient(&self, weight_gradient: &[f32]) -> Vec<f32> {
        assert_eq!(
            weight_gradient.len(),
            self.codes.len(),
            "gradient vs weights"
        );
        let mut sums = vec![0.0f64; self.values.len()];
        for (&code, &g) in self.codes.iter().zip(weight_gradient) {
            if code != PRUNED {
                sums[code as usize] += f64::from(g);
            }
        }
        sums.into_iter().map(|s| s as f32).collect()
    }

    /// Write the layer's weights from the current shared values: each
    /// weight its value, pruned ones zero.
    ///
    /// # Panics
    ///
    /// If `weights` is not as long as the layer.
    pub fn write_weights(&self, weights: &mut [f32]) {
        assert_eq!(weights.len(), self.codes.len(), "weights vs layer");
        for (w, &code) in weights.iter_mut().zip(&self.codes) {
            *w = if code == PRUNED {
                0.0
            } else {
                self.values[code as usize]
            };
        }
    }
}
