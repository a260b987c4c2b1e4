//! Gradients are bit-identical whatever the number of threads, and
//! whatever buffers an earlier step left behind.

use formats::{Op, PoolKind};

use crate::engine::grad::tape::forward_with_kernel;
use crate::engine::grad::{forward_for_training, Gradients, StepMemory};
use crate::engine::tests::{conv_op, model, new_ops_model, node, pool_op, Values};
use crate::engine::Tensor;

/// Forward and backward passes on a pool of `threads` threads.
pub fn gradients_on(threads: usize, m: &formats::Model, input: &Tensor, seed: u64) -> Gradients {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| step(m, input, seed, &mut StepMemory::default()))
}

/// One forward and backward pass with `memory`, the output gradient drawn
/// from `seed`.
fn step(m: &formats::Model, input: &Tensor, seed: u64, memory: &mut StepMemory) -> Gradients {
    let tape = forward_for_training(m, input, memory).unwrap();
    let d_output = Values::new(seed).tensor(tape.output().shape);
    tape.backward(d_output, memory).unwrap()
}

/// A graph with every kind of kernel, and a batch spanning three tasks of
/// images per convolution.
fn mixed_model() -> (formats::Model, Tensor) {
    let mut v = Values::new(41);
    let layers = vec![
        v.layer("c1", [80, 3, 3, 3]),
        v.layer("c2", [70, 80, 1, 1]),
        v.layer("c3", [10, 70, 3, 3]),
    ];
    let nodes = vec![
        node("c1", conv_op(0, (2, 2), (1, 1), true), &["data"], "c1"),
        node(
            "pool",
            Op::Pool(pool_op(PoolKind::Max, (3, 3), (2, 2), (0, 0), true)),
            &["c1"],
            "p",
        ),
        node("c2", conv_op(1, (1, 1), (0, 0), true), &["p"], "c2"),
        node("cat", Op::Concat, &["c2", "p"], "cat"),
        node(
            "avg",
            Op::Pool(pool_op(PoolKind::Avg, (3, 3), (1, 1), (1, 1), true)),
            &["c2"],
            "avg",
        ),
        node("c3", conv_op(2, (1, 1), (1, 1), false), &["avg"], "c3"),
        node("gap", Op::GlobalAvgPool, &["c3"], "gap"),
        node("prob", Op::Softmax, &["gap"], "prob"),
    ];
    (model(nodes, layers, 41, "prob"), v.tensor([9, 3, 41, 41]))
}

#[test]
fn thread_count_does_not_change_any_gradient_bit() {
    for (m, input) in [mixed_model(), new_ops_model()] {
        let one = gradients_on(1, &m, &input, 42);
        assert!(one
            .layers
            .iter()
            .all(|l| l.weights.iter().any(|&g| g != 0.0)));
        for threads in [2, 3] {
            assert!(
                gradients_on(threads, &m, &input, 42) == one,
                "{threads} threads"
            );
        }
    }
}

/// The tape convolves on the kernels `forward` uses: with im2col + faer its
/// output equals the inference engine's im2col path bit for bit; with the
/// packed micro-kernel it agrees with `forward` to float rounding only,
/// because the blocked path runs 3x3 convolutions with stride 1 on
/// Winograd's algorithm (1e-4 relative).
#[test]
fn tape_output_matches_the_forward_pass() {
    for (m, input) in [mixed_model(), new_ops_model()] {
        let mut memory = StepMemory::default();
        let tape = forward_for_training(&m, &input, &mut memory).unwrap();
        let fast = crate::engine::forward(&m, &input).unwrap();
        assert_eq!(tape.output().shape, fast.shape);
        for (a, b) in tape.output().data.iter().zip(&fast.data) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-3), "{a} vs {b}");
        }
        let tape = forward_with_kernel(&m, &input, &mut memory, None).unwrap();
        let im2col = crate::engine::Session::with_kernel(&m, None)
            .unwrap()
            .run(&input)
            .unwrap();
        assert_eq!(tape.output(), &im2col);
    }
}

/// The micro-kernel's forward convolutions and the im2col + faer ones sum
/// in other orders: the gradients after either agree to float rounding,
/// amplified through the layers above (here to 1e-3 of each tensor's
/// largest entry).
#[test]
fn gradients_after_either_forward_kernel_agree() {
    let Some(kernel) = crate::engine::kernel::Kernel::detect() else {
        return; // Only the im2col path exists on this CPU.
    };
    for (m, input) in [mixed_model(), new_ops_model()] {
        let run = |kernel| {
            let mut memory = StepMemory::default();
            let tape = forward_with_kernel(&m, &input, &mut memory, kernel).unwrap();
            let d_output = Values::new(46).tensor(tape.output().shape);
            tape.backward(d_output, &mut memory).unwrap()
        };
        let (fast, im2col) = (run(Some(kernel)), run(None));
        let pairs = fast
            .layers
            .iter()
            .zip(&im2col.layers)
            .flat_map(|(a, b)| [(&a.weights, &b.weights), (&a.bias, &b.bias)]);
        for (a, b) in pairs.chain([(&fast.input.data, &im2col.input.data)]) {
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-3 * scale, "differ by {worst} (largest {scale})");
        }
    }
}

#[test]
fn reused_step_memory_does_not_change_any_gradient_bit() {
    for (m, input) in [mixed_model(), new_ops_model()] {
        reused_memory_changes_nothing(&m, &input);
    }
}

fn reused_memory_changes_nothing(m: &formats::Model, input: &Tensor) {
    let fresh = step(m, input, 44, &mut StepMemory::default());
    // Buffers left by steps on other data hold other values.
    let mut memory = StepMemory::default();
    let mut other = input.clone();
    other.data.iter_mut().for_each(|v| *v = 1.0 - *v * 3.0);
    step(m, &other, 45, &mut memory);
    for _ in 0..2 {
        assert!(step(m, input, 44, &mut memory) == fresh);
        step(m, &other, 45, &mut memory);
    }
}

#[test]
fn parameter_gradients_equal_the_full_backward_passs_layers() {
    let (m, input) = mixed_model();
    let full = gradients_on(2, &m, &input, 7);
    let mut memory = StepMemory::default();
    let tape = forward_for_training(&m, &input, &mut memory).unwrap();
    let d_output = Values::new(7).tensor(tape.output().shape);
    let layers = tape.parameter_gradients(d_output, &mut memory).unwrap();
    assert_eq!(layers, full.layers);
    assert!(full.input.data.iter().any(|&v| v != 0.0));
}
