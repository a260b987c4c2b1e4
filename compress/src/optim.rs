//! First-order optimizers for fine-tuning a compressed network, and the
//! learning-rate schedule that drives them.
//!
//! An [`Optimizer`] is a method (Adam or SGD with momentum) plus decoupled
//! weight decay; it updates one parameter slice at a time from its gradient,
//! keeping its moments in a [`State`] per slice. A parameter whose gradient
//! is always zero and whose value is zero never moves: its moments stay
//! zero and so does its decay, which is what keeps pruned weights pruned
//! when their gradient is masked (see [`crate::trained_quantization`]).
//!
//! Every update is element-wise and sequential, so results are
//! deterministic. [`CosineSchedule`] gives the learning rate of each step:
//! a linear warm-up, then a cosine decay to a floor.

/// How an [`Optimizer`] turns gradients into steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Adam (Kingma & Ba, 2015): steps by the bias-corrected first moment
    /// over the square root of the bias-corrected second moment.
    Adam {
        /// Decay of the first moment (the running mean of gradients).
        beta1: f32,
        /// Decay of the second moment (the running mean of squared gradients).
        beta2: f32,
        /// Added to the second moment's root to keep steps finite.
        epsilon: f32,
    },
    /// Stochastic gradient descent with heavy-ball momentum, as PyTorch
    /// computes it: `v = momentum * v + g`, `p -= rate * v`.
    Sgd {
        /// Fraction of the previous velocity kept at each step.
        momentum: f32,
    },
}

impl Method {
    /// Adam with the usual constants (0.9, 0.999, 1e-8).
    pub fn adam() -> Self {
        Method::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// A [`Method`] with decoupled weight decay (as in AdamW: each step also
/// shrinks every parameter by `rate * weight_decay` times itself).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimizer {
    pub method: Method,
    pub weight_decay: f32,
}

/// What an [`Optimizer`] remembers about one parameter slice between steps.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Adam's first moment, or SGD's velocity.
    first: Vec<f32>,
    /// Adam's second moment; empty for SGD.
    second: Vec<f32>,
    /// Steps taken so far (Adam's bias correction needs it).
    steps: i32,
}

impl Optimizer {
    /// A fresh state for a slice of `len` parameters (all moments zero).
    pub fn state(&self, len: usize) -> State {
        let second = match self.method {
            Method::Adam { .. } => vec![0.0; len],
            Method::Sgd { .. } => Vec::new(),
        };
        State {
            first: vec![0.0; len],
            second,
            steps: 0,
        }
    }

    /// Update `params` in place by one step of size `rate` against
    /// `gradient`.
    ///
    /// # Panics
    ///
    /// If `params`, `gradient` and `state` (made by [`Optimizer::state`]
    /// with this optimizer) do not all have the same length: that is a bug
    /// in the caller, not bad input.
    pub fn step(&self, state: &mut State, params: &mut [f32], gradient: &[f32], rate: f32) {
        assert_eq!(params.len(), gradient.len(), "parameters vs gradient");
        assert_eq!(params.len(), state.first.len(), "parameters vs state");
        state.steps = state.steps.saturating_add(1);
        let decay = 1.0 - rate * self.weight_decay;
        match self.method {
            Method::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                assert_eq!(state.second.len(), params.len(), "state is not Adam's");
                // Bias corrections 1 - beta^t, in f64 so that they stay
                // accurate for betas near 1.
                let correct1 = 1.0 - f64::from(beta1).powi(state.steps);
                let correct2 = 1.0 - f64::from(beta2).powi(state.steps);
                let step_size = (f64::from(rate) / correct1) as f32;
                let root_correct2 = correct2.sqrt() as f32;
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(gradient)
                    .zip(&mut state.first)
                    .zip(&mut state.second)
                {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p = *p * decay - step_size * *m / (v.sqrt() / root_correct2 + epsilon);
                }
            }
            Method::Sgd { momentum } => {
                for ((p, &g), velocity) in params.iter_mut().zip(gradient).zip(&mut state.first) {
                    *velocity = momentum * *velocity + g;
                    *p = *p * decay - rate * *velocity;
                }
            }
        }
    }
}

/// Learning rate per step: a linear warm-up from `peak / warmup` to `peak`
/// over the first `warmup` steps, then a cosine decay from `peak` to `floor`
/// at step `total`, and `floor` after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    pub peak: f32,
    pub floor: f32,
    pub warmup: usize,
    pub total: usize,
}

impl CosineSchedule {
    /// The rate of step `step` (counted from 0).
    pub fn rate(&self, step: usize) -> f32 {
        if step < self.warmup {
            return self.peak * (step + 1) as f32 / self.warmup as f32;
        }
        let decay_steps = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        (f64::from(self.floor) + f64::from(self.peak - self.floor) * cosine) as f32
    }
}
