//! Tests of the backward pass: every gradient against central finite
//! differences of a float64 reference forward pass, on small graphs with
//! every operation and on the real SqueezeNet v1.1, and bit-identical
//! gradients whatever the thread count.
//!
//! The loss is `L = Σ r_i · y_i` over the graph's output `y` with fixed
//! pseudo-random weights `r`, so `∂L/∂y = r` is what the backward pass
//! starts from.

mod determinism;
mod errors;
mod ops;
mod reference;
mod squeezenet;

use formats::Model;

use super::{forward_for_training, Gradients, StepMemory};
use crate::engine::tests::Values;
use crate::engine::Tensor;
use reference::{Blob, Params};

/// Finite-difference step, in float64: small enough that the steps rarely
/// cross a ReLU or max-pooling kink, large enough that rounding in the
/// differences (about 1e-16 / STEP relative) stays far below the tolerance.
const STEP: f64 = 1e-5;

/// An engine gradient passes if it is within `RELATIVE` of the numeric one
/// plus `ABSOLUTE` times the largest numeric gradient of its tensor. The
/// engine computes in float32; on these tests its worst entry used 2 % of
/// this allowance, which leaves room for summation-order changes in the
/// forward kernels and for a rare kink that float32 rounding crosses but
/// float64 does not.
const RELATIVE: f64 = 1e-4;
const ABSOLUTE: f64 = 1e-5;

/// A parameter or input tensor of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Weights(usize),
    Bias(usize),
    Input,
}

/// The loss of a model on one input, in float64, and its gradients from
/// the engine.
pub struct GradientCheck<'m> {
    model: &'m Model,
    params: Params,
    input: Blob,
    projection: Vec<f64>,
    engine: Gradients,
}

impl<'m> GradientCheck<'m> {
    /// Run the engine's forward and backward passes on `input` with the
    /// loss weights drawn from `seed`.
    pub fn new(model: &'m Model, input: &Tensor, seed: u64) -> Self {
        let mut memory = StepMemory::default();
        let tape = forward_for_training(model, input, &mut memory).expect("forward pass");
        let shape = tape.output().shape;
        let r = Values::new(seed).vec(shape.iter().product());
        let engine = tape
            .backward(Tensor::new(shape, r.clone()).unwrap(), &mut memory)
            .expect("backward pass");
        GradientCheck {
            model,
            params: Params::of(model),
            input: Blob {
                shape: input.shape,
                data: input.data.iter().map(|&v| f64::from(v)).collect(),
            },
            projection: r.iter().map(|&v| f64::from(v)).collect(),
            engine,
        }
    }

    fn loss(&self, params: &Params, input: &Blob) -> f64 {
        let output = reference::forward(self.model, params, input);
        output
            .data
            .iter()
            .zip(&self.projection)
            .map(|(y, r)| y * r)
            .sum()
    }

    /// Central difference of the loss in entry `index` of `target`.
    pub fn numeric(&self, target: Target, index: usize) -> f64 {
        let at = |delta: f64| {
            let (mut params, mut input) = (self.params.clone(), self.input.clone());
            let value = match target {
                Target::Weights(l) => &mut params.weights[l][index],
                Target::Bias(l) => &mut params.bias[l][index],
                Target::Input => &mut input.data[index],
            };
            *value += delta;
            self.loss(&params, &input)
        };
        (at(STEP) - at(-STEP)) / (2.0 * STEP)
    }

    /// The engine's gradient of `target`.
    pub fn analytic(&self, target: Target) -> &[f32] {
        match target {
            Target::Weights(l) => &self.engine.layers[l].weights,
            Target::Bias(l) => &self.engine.layers[l].bias,
            Target::Input => &self.engine.input.data,
        }
    }

    /// Compare the engine's gradient of `target` with finite differences
    /// at `indices`; panics naming the first entry out of tolerance.
    /// Returns the largest numeric gradient seen, which the caller checks
    /// is not zero (a check of zeros against zeros proves little).
    #[track_caller]
    pub fn compare(&self, target: Target, indices: &[usize]) -> f64 {
        let analytic = self.analytic(target);
        let numeric: Vec<f64> = indices.iter().map(|&i| self.numeric(target, i)).collect();
        let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (&i, &n) in indices.iter().zip(&numeric) {
            let a = f64::from(analytic[i]);
            assert!(
                (a - n).abs() <= RELATIVE * n.abs() + ABSOLUTE * scale,
                "{target:?}[{i}]: engine {a:e}, finite differences {n:e} (largest {scale:e})"
            );
        }
        scale
    }

    /// [`Self::compare`] on every entry of every layer's weights and biases
    /// and of the input, asserting that none of them is all zero.
    #[track_caller]
    pub fn compare_everything(&self) {
        let layers = self.model.layers.len();
        let targets = (0..layers)
            .flat_map(|l| [Target::Weights(l), Target::Bias(l)])
            .chain([Target::Input]);
        for target in targets {
            let all: Vec<usize> = (0..self.analytic(target).len()).collect();
            let scale = self.compare(target, &all);
            assert!(scale > 1e-6, "{target:?}: every gradient is zero");
        }
    }
}
