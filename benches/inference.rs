//! Inference speed of the engine on both real SqueezeNets, and the GEMM
//! comparison that chose its backend. Run with `cargo bench --bench inference`.
//!
//! For each model: the time to read it from disk, then images per second at
//! batch 1 and batch 16 of one prepared `Session` on a 2-thread pool (a few warm-up runs, then the
//! median of several timed runs). The batches repeat the 4 reference images
//! of the shared data (`SQZ_SHARED`, default `../shared`).
//!
//! Then single-threaded GFLOP/s of faer and of ndarray's `general_mat_mul`
//! (matrixmultiply) on the per-image matrix products of SqueezeNet's
//! convolutions, as the engine computes them.

use std::time::Duration;

use sqz::engine::Session;

mod common;
use common::{batch_of, median, models, reference_images, shared_dir, timed};

const THREADS: usize = 2;
const WARM_UP: usize = 2;
const TIMED: usize = 7;

fn main() {
    let shared = shared_dir();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("thread pool");
    println!("engine on {THREADS} threads: median of {TIMED} runs after {WARM_UP} warm-up runs");
    println!(
        "{:<34} {:>10} {:>16} {:>17}",
        "model", "load (ms)", "batch 1 (img/s)", "batch 16 (img/s)"
    );
    for (name, side, load) in models() {
        let load_time = median((0..TIMED).map(|_| timed(|| load(&shared)).1).collect());
        let model = load(&shared);
        let session = Session::new(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let images = reference_images(&shared, name, side);
        let rates: Vec<f64> = [1, 16]
            .iter()
            .map(|&batch| {
                let input = batch_of(&images, batch, side);
                let run = || {
                    pool.install(|| session.run(&input))
                        .unwrap_or_else(|e| panic!("{name}: {e}"))
                };
                (0..WARM_UP).for_each(|_| drop(run()));
                batch as f64 / median((0..TIMED).map(|_| timed(run).1).collect()).as_secs_f64()
            })
            .collect();
        println!(
            "{name:<34} {:>10.1} {:>16.1} {:>17.1}",
            load_time.as_secs_f64() * 1e3,
            rates[0],
            rates[1]
        );
    }
    compare_gemm();
}

/// Single-threaded GFLOP/s of both GEMM backends on `[m x k] * [k x n]`
/// products from SqueezeNet v1.1 (224 input) and v1.0 (227 input).
fn compare_gemm() {
    const SHAPES: [(usize, usize, usize); 12] = [
        (64, 27, 12321),  // v1.1 conv1
        (16, 64, 3025),   // v1.1 fire2 squeeze
        (64, 144, 3025),  // v1.1 fire2 expand 3x3
        (128, 288, 729),  // v1.1 fire4 expand 3x3
        (192, 432, 169),  // v1.1 fire6 expand 3x3
        (256, 576, 169),  // v1.1 fire9 expand 3x3
        (1000, 512, 169), // v1.1 conv10
        (96, 147, 12321), // v1.0 conv1
        (64, 144, 3025),  // v1.0 fire2 expand 3x3
        (128, 288, 729),  // v1.0 fire4-5 expand 3x3
        (256, 576, 169),  // v1.0 fire9 expand 3x3
        (1000, 512, 225), // v1.0 conv_final (padded 15x15)
    ];
    println!("\nGEMM, 1 thread, GFLOP/s (m x k x n = output channels x window size x positions)");
    println!(
        "{:>5} {:>5} {:>6} {:>8} {:>8}",
        "m", "k", "n", "faer", "ndarray"
    );
    let (mut faer_total, mut ndarray_total) = (Duration::ZERO, Duration::ZERO);
    for (m, k, n) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
        let mut c = vec![0.0f32; m * n];
        let reps = (2e9 / (2 * m * k * n) as f64).ceil() as usize;
        let faer_time = median(
            (0..TIMED)
                .map(|_| timed(|| (0..reps).for_each(|_| faer_gemm(&a, &b, &mut c, m, k, n))).1)
                .collect(),
        );
        let ndarray_time = median(
            (0..TIMED)
                .map(|_| timed(|| (0..reps).for_each(|_| ndarray_gemm(&a, &b, &mut c, m, k, n))).1)
                .collect(),
        );
        let gflop = (2 * m * k * n * reps) as f64 / 1e9;
        println!(
            "{m:>5} {k:>5} {n:>6} {:>8.1} {:>8.1}",
            gflop / faer_time.as_secs_f64(),
            gflop / ndarray_time.as_secs_f64()
        );
        faer_total += faer_time / reps as u32;
        ndarray_total += ndarray_time / reps as u32;
    }
    println!(
        "one product of each shape: faer {:.2} ms, ndarray {:.2} ms",
        faer_total.as_secs_f64() * 1e3,
        ndarray_total.as_secs_f64() * 1e3
    );
}

fn faer_gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let (a, b) = (
        faer::MatRef::from_row_major_slice(a, m, k),
        faer::MatRef::from_row_major_slice(b, k, n),
    );
    let c = faer::MatMut::from_row_major_slice_mut(c, m, n);
    faer::linalg::matmul::matmul(c, faer::Accum::Replace, a, b, 1.0, faer::Par::Seq);
}

fn ndarray_gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let a = ndarray::ArrayView2::from_shape((m, k), a).expect("a is m x k");
    let b = ndarray::ArrayView2::from_shape((k, n), b).expect("b is k x n");
    let mut c = ndarray::ArrayViewMut2::from_shape((m, n), c).expect("c is m x n");
    ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}
