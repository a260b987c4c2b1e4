//! Optimizers and the learning-rate schedule: convergence on a quadratic,
//! zeros that stay zero, and the schedule's shape.

use compress::optim::{CosineSchedule, Method, Optimizer};
use compress::rng::SplitMix64;

/// `f(x) = ½ Σ a_i (x_i − c_i)²` with curvatures `a` spread over two orders
/// of magnitude; returns the curvatures, the minimum `c` and `∇f(x)`.
struct Quadratic {
    curvature: Vec<f32>,
    minimum: Vec<f32>,
}

impl Quadratic {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        Quadratic {
            curvature: (0..n)
                .map(|i| 0.1 * 100f32.powf(i as f32 / (n - 1) as f32))
                .collect(),
            minimum: (0..n).map(|_| rng.gaussian() as f32).collect(),
        }
    }

    fn gradient(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(&self.curvature)
            .zip(&self.minimum)
            .map(|((x, a), c)| a * (x - c))
            .collect()
    }

    fn distance(&self, x: &[f32]) -> f32 {
        x.iter()
            .zip(&self.minimum)
            .map(|(x, c)| (x - c).abs())
            .fold(0.0, f32::max)
    }
}

/// Run `steps` steps of `optimizer` at a fixed `rate` from zero.
fn minimise(optimizer: Optimizer, f: &Quadratic, rate: f32, steps: usize) -> Vec<f32> {
    let mut x = vec![0.0; f.minimum.len()];
    let mut state = optimizer.state(x.len());
    for _ in 0..steps {
        let g = f.gradient(&x);
        optimizer.step(&mut state, &mut x, &g, rate);
    }
    x
}

#[test]
fn adam_converges_on_a_quadratic() {
    let f = Quadratic::new(50, 1);
    let start = f.distance(&[0.0; 50]);
    let adam = Optimizer {
        method: Method::adam(),
        weight_decay: 0.0,
    };
    let schedule = CosineSchedule {
        peak: 0.1,
        floor: 0.0,
        warmup: 20,
        total: 2000,
    };
    let mut x = vec![0.0; 50];
    let mut state = adam.state(50);
    for step in 0..2000 {
        let g = f.gradient(&x);
        adam.step(&mut state, &mut x, &g, schedule.rate(step));
    }
    let end = f.distance(&x);
    assert!(start > 1.0 && end < 1e-3, "from {start} to {end}");
}

#[test]
fn sgd_with_momentum_converges_on_a_quadratic() {
    let f = Quadratic::new(50, 2);
    let sgd = Optimizer {
        method: Method::Sgd { momentum: 0.9 },
        weight_decay: 0.0,
    };
    // Largest curvature 10: a rate of 0.1 is stable with momentum 0.9.
    let x = minimise(sgd, &f, 0.1, 3000);
    assert!(f.distance(&x) < 1e-3, "{}", f.distance(&x));
    // Without momentum the flattest direction (curvature 0.1) is far slower.
    let plain = Optimizer {
        method: Method::Sgd { momentum: 0.0 },
        weight_decay: 0.0,
    };
    assert!(
        f.distance(&minimise(plain, &f, 0.1, 300))
            > 10.0 * f.distance(&minimise(sgd, &f, 0.1, 300))
    );
}

#[test]
fn first_adam_step_moves_each_parameter_by_the_rate() {
    // With bias correction, step 1 is rate * g / (|g| + eps) per parameter.
    let adam = Optimizer {
        method: Method::adam(),
        weight_decay: 0.0,
    };
    let mut x = vec![1.0, 1.0, 1.0];
    let mut state = adam.state(3);
    adam.step(&mut state, &mut x, &[0.5, -3.0, 1e-3], 0.01);
    for (x, expected) in x.iter().zip([0.99, 1.01, 0.99]) {
        assert!((x - expected).abs() < 1e-5, "{x} vs {expected}");
    }
}

#[test]
fn zero_parameters_with_zero_gradient_stay_exactly_zero() {
    for method in [Method::adam(), Method::Sgd { momentum: 0.9 }] {
        let optimizer = Optimizer {
            method,
            weight_decay: 1e-2,
        };
        let mut rng = SplitMix64::new(3);
        let mut x: Vec<f32> = (0..100)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    rng.gaussian() as f32
                }
            })
            .collect();
        let mut state = optimizer.state(x.len());
        for _ in 0..50 {
            let g: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i % 3 == 0 {
                        0.0
                    } else {
                        rng.gaussian() as f32
                    }
                })
                .collect();
            optimizer.step(&mut state, &mut x, &g, 0.05);
        }
        for (i, v) in x.iter().enumerate() {
            assert_eq!(*v == 0.0, i % 3 == 0, "{method:?}: parameter {i} = {v}");
        }
    }
}

#[test]
fn weight_decay_shrinks_parameters_without_gradient() {
    let sgd = Optimizer {
        method: Method::Sgd { momentum: 0.0 },
        weight_decay: 0.1,
    };
    let mut x = vec![2.0];
    let mut state = sgd.state(1);
    sgd.step(&mut state, &mut x, &[0.0], 0.5);
    assert_eq!(x, [2.0 * (1.0 - 0.5 * 0.1)]);
}

#[test]
fn cosine_schedule_warms_up_then_decays_to_the_floor() {
    let s = CosineSchedule {
        peak: 1.0,
        floor: 0.1,
        warmup: 4,
        total: 14,
    };
    let rates: Vec<f32> = (0..16).map(|step| s.rate(step)).collect();
    assert_eq!(&rates[..4], [0.25, 0.5, 0.75, 1.0]);
    assert_eq!(rates[4], 1.0);
    // Halfway through the decay: the mean of peak and floor.
    assert!((rates[9] - 0.55).abs() < 1e-6, "{}", rates[9]);
    assert!(rates[4..].windows(2).all(|w| w[1] <= w[0]), "{rates:?}");
    assert_eq!(&rates[14..], [0.1, 0.1]);
}
