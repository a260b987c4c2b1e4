//! What fine-tuning may change in each layer, and how it changes it.
//!
//! A layer the `.sqz` encoder stores with a codebook keeps its code of
//! every weight: only its shared values train (gradient = sum over each
//! value's members). Any other layer trains every nonzero weight; pruned
//! weights get no gradient and stay exactly zero. Biases always train.
//! Shared values are kept distinct, nonzero and in their original order,
//! so the file's codebook indices do not change, and a value stored as
//! float16 before fine-tuning is rounded back to float16 at the end, so
//! each layer keeps its storage and the file its size.

use compress::optim::{Optimizer, State};
use compress::trained_quantization::{PruneMask, SharedWeights};
use formats::sqz::{encode_layer, WeightStorage};
use formats::Layer;
use half::f16;

use crate::engine::LayerGradient;

/// One layer's trainable parameters and their optimizer state.
pub(super) struct Trainable {
    weights: Weights,
    weight_state: State,
    bias_state: State,
    /// The weights (or shared values) were all float16 values.
    half_weights: bool,
    /// The biases were all float16 values.
    half_bias: bool,
}

/// How a layer's weights train.
enum Weights {
    /// Codes fixed, shared values train.
    Shared(SharedWeights),
    /// Each nonzero weight trains; pruned ones stay zero.
    Free(PruneMask),
}

impl Trainable {
    /// The trainable parameters of `layer`, with fresh `optimizer` state.
    pub(super) fn new(layer: &Layer, optimizer: &Optimizer) -> Self {
        let shared = matches!(
            encode_layer(layer).weights,
            WeightStorage::Quantized { .. } | WeightStorage::SparseQuantized { .. }
        );
        let weights = match shared {
            true => Weights::Shared(SharedWeights::from_weights(&layer.weights)),
            false => Weights::Free(PruneMask::from_weights(&layer.weights)),
        };
        let trained = match &weights {
            Weights::Shared(s) => s.values().len(),
            Weights::Free(_) => layer.weights.len(),
        };
        Trainable {
            weights,
            weight_state: optimizer.state(trained),
            bias_state: optimizer.state(layer.bias.len()),
            half_weights: layer.weights.iter().all(|&w| is_half(w)),
            half_bias: layer.bias.iter().all(|&b| is_half(b)),
        }
    }

    /// One optimizer step on `layer` with its `gradient` at learning `rate`.
    pub(super) fn step(
        &mut self,
        layer: &mut Layer,
        mut gradient: LayerGradient,
        optimizer: &Optimizer,
        rate: f32,
    ) {
        match &mut self.weights {
            Weights::Shared(shared) => {
                let values_gradient = shared.value_gradient(&gradient.weights);
                let values = shared.values_mut();
                optimizer.step(&mut self.weight_state, values, &values_gradient, rate);
                keep_codes(values, f32::next_up);
                shared.write_weights(&mut layer.weights);
            }
            Weights::Free(mask) => {
                mask.apply(&mut gradient.weights);
                optimizer.step(
                    &mut self.weight_state,
                    &mut layer.weights,
                    &gradient.weights,
                    rate,
                );
                keep_nonzero(&mut layer.weights, mask.pruned(), f32::MIN_POSITIVE);
            }
        }
        optimizer.step(&mut self.bias_state, &mut layer.bias, &gradient.bias, rate);
    }

    /// Round what was float16 before training back to float16, keeping
    /// codes and nonzeros as they were.
    pub(super) fn finish(&mut self, layer: &mut Layer) {
        if self.half_weights {
            match &mut self.weights {
                Weights::Shared(shared) => {
                    let values = shared.values_mut();
                    values.iter_mut().for_each(|v| *v = round_half(*v));
                    keep_codes(values, next_up_half);
                    shared.write_weights(&mut layer.weights);
                }
                Weights::Free(mask) => {
                    layer.weights.iter_mut().for_each(|w| *w = round_half(*w));
                    let smallest = f16::from_bits(1).to_f32();
                    keep_nonzero(&mut layer.weights, mask.pruned(), smallest);
                }
            }
        }
        if self.half_bias {
            layer.bias.iter_mut().for_each(|b| *b = round_half(*b));
        }
    }
}

/// Make `values` strictly increasing and nonzero by moving each offending
/// value up to the next representable one (`next_up`), so that sorting the
/// distinct values gives every weight the same code as before.
fn keep_codes(values: &mut [f32], next_up: fn(f32) -> f32) {
    for i in 0..values.len() {
        if i > 0 && values[i] <= values[i - 1] {
            values[i] = next_up(values[i - 1]);
        }
        if values[i] == 0.0 {
            values[i] = next_up(0.0);
        }
    }
}

/// Set every unpruned weight that reached exactly zero to `smallest`, so
/// that the nonzero positions do not change.
fn keep_nonzero(weights: &mut [f32], pruned: &[bool], smallest: f32) {
    for (w, &pruned) in weights.iter_mut().zip(pruned) {
        if !pruned && *w == 0.0 {
            *w = smallest;
        }
    }
}

fn is_half(x: f32) -> bool {
    round_half(x).to_bits() == x.to_bits()
}

fn round_half(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// The next float16 value above the float16 value `x`.
fn next_up_half(x: f32) -> f32 {
    let bits = f16::from_f32(x).to_bits();
    let up = match bits {
        0x8000 | 0x0000 => 0x0001,
        b if b & 0x8000 != 0 => b - 1,
        b => b + 1,
    };
    f16::from_bits(up).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_or_zero_shared_values_are_pushed_apart_in_order() {
        let mut values = [-0.5, -0.5, 0.0, 0.25, 0.1];
        keep_codes(&mut values, f32::next_up);
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        assert!(values.iter().all(|&v| v != 0.0));
        assert_eq!(values[0], -0.5);

        let mut half = [0.5, 0.5, -0.0];
        keep_codes(&mut half, next_up_half);
        assert!(half.windows(2).all(|w| w[0] < w[1]), "{half:?}");
        assert!(half.iter().all(|&v| is_half(v)));
    }
}
