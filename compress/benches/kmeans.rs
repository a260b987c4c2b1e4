//! Time to cluster 1.23 M Gaussian weights, split like SqueezeNet v1.1's 26
//! convolution layers and clustered per layer, at 6 and 8 bits: our sorted
//! 1-D k-means against linfa-clustering's generic k-means from the same
//! initial centroids and for the same number of iterations.
//!
//! linfa's cost is linear in the iteration count (`O(n k)` each), and the
//! full run takes about ten minutes on two cores; by default linfa runs at
//! most [`LINFA_SAMPLE_ITER`] iterations per layer and its time is scaled
//! up to ours' iteration count (reported as "extrapolated"). Set
//! `SQZ_BENCH_FULL=1` to time linfa's full run instead.
//!
//! Run: `cargo bench -p sqz-algos --bench kmeans`.

mod common;

use common::squeezenet_like_layers;
use compress::kmeans::{initial_centroids, kmeans_1d, Init};
use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use std::time::{Duration, Instant};

/// Iteration cap for both implementations (linfa's default).
const MAX_ITER: usize = 300;
/// Repetitions of our (fast) run; the median is reported.
const REPEATS: usize = 5;
/// Iterations per layer linfa runs unless `SQZ_BENCH_FULL` is set.
const LINFA_SAMPLE_ITER: usize = 10;

fn main() {
    let layers = squeezenet_like_layers(2016);
    let weights: usize = layers.iter().map(Vec::len).sum();
    println!(
        "{weights} weights in {} layers, linear init, at most {MAX_ITER} iterations per layer",
        layers.len()
    );
    println!(
        "linfa uses rayon on {} threads; ours runs on one",
        rayon::current_num_threads()
    );
    let full = std::env::var_os("SQZ_BENCH_FULL").is_some_and(|v| v == "1");
    let cap = if full { usize::MAX } else { LINFA_SAMPLE_ITER };
    for bits in [6u32, 8] {
        let k = 1usize << bits;
        let (ours, iterations) = time_ours(&layers, k);
        let linfa = time_linfa(&layers, k, &iterations, cap);
        let total: usize = iterations.iter().sum();
        println!(
            "{bits} bits (k = {k}): ours {:>8.1} ms, linfa {:>9.1} ms{}, linfa/ours = {:.0}x ({total} Lloyd iterations over all layers)",
            ms(ours),
            ms(linfa),
            if full { "" } else { " (extrapolated)" },
            linfa.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

/// Median time of our k-means over all layers, and the iterations each
/// layer took.
fn time_ours(layers: &[Vec<f32>], k: usize) -> (Duration, Vec<usize>) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut iterations = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        iterations = layers
            .iter()
            .map(|l| kmeans_1d(l, k, Init::Linear, MAX_ITER).iterations)
            .collect();
        times.push(start.elapsed());
    }
    times.sort();
    (times[REPEATS / 2], iterations)
}

/// linfa's time over all layers, each started from our initial centroids
/// and run for as many iterations as ours took on that layer: measured for
/// at most `cap` iterations, and scaled linearly beyond.
fn time_linfa(layers: &[Vec<f32>], k: usize, iterations: &[usize], cap: usize) -> Duration {
    let mut total = Duration::ZERO;
    for (layer, &wanted) in layers.iter().zip(iterations) {
        let wanted = wanted.max(1);
        let iters = wanted.min(cap);
        let records = Array2::from_shape_fn((layer.len(), 1), |(i, _)| f64::from(layer[i]));
        let start = initial_centroids(layer, k, Init::Linear);
        let init = Array2::from_shape_fn((start.len(), 1), |(i, _)| start[i]);
        let dataset = DatasetBase::from(records);
        let params = KMeans::params(start.len())
            .init_method(KMeansInit::Precomputed(init))
            .n_runs(1)
            .tolerance(f64::MIN_POSITIVE)
            .max_n_iterations(iters as u64);
        let began = Instant::now();
        let model = params.fit(&dataset).expect("linfa k-means");
        total += began.elapsed().mul_f64(wanted as f64 / iters as f64);
        std::hint::black_box(model);
    }
    total
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
