//! Time of the calibration-based reconstruction at SqueezeNet's sizes:
//! accumulating the Hessian of conv1's inputs (v1.0: 96 × 3 × 7 × 7, so
//! columns of 147, 111 × 111 per image, 256 images ≈ 3.15 M columns), and
//! reconstructing the largest layer (conv10: 1000 × 512, fed by 13 × 13
//! positions per image).
//!
//! The columns are synthetic, correlated (a random mixing of fewer latent
//! factors, through ReLU); a handful of distinct images is generated and
//! cycled, since generating 3 M random columns would take longer than
//! accumulating them.
//!
//! Each step reports wall time and, on Linux, the CPU time of the whole
//! process (all threads), which stays meaningful when other jobs share
//! the cores.
//!
//! Run: `cargo bench -p sqz-algos --bench calib` (set `RAYON_NUM_THREADS`
//! to compare thread counts; the results are identical).

use compress::calib::{
    gptq_quantize, output_error, prune_reconstruct, GptqOptions, Hessian, ReconstructOptions,
};
use compress::kmeans::{kmeans_1d, Init};
use compress::rng::SplitMix64;
use std::time::Instant;

/// Wall and process CPU time since it was started.
struct Timer {
    wall: Instant,
    cpu: Option<f64>,
}

impl Timer {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: process_cpu_seconds(),
        }
    }

    /// "wall X s, cpu Y s".
    fn report(&self) -> String {
        let wall = self.wall.elapsed().as_secs_f64();
        match (self.cpu, process_cpu_seconds()) {
            (Some(a), Some(b)) => format!("wall {wall:.3} s, cpu {:.2} s", b - a),
            _ => format!("wall {wall:.3} s"),
        }
    }
}

/// User + system time of this process from `/proc/self/stat` (fields 14
/// and 15, in clock ticks of 1/100 s), or `None` off Linux.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Images of calibration data.
const IMAGES: usize = 256;
/// Distinct synthetic images generated and cycled through.
const DISTINCT: usize = 4;
/// Sparsities conv10 is pruned to; the second one is then quantized.
const SPARSITIES: [f64; 3] = [0.3, 0.5, 0.8];

fn main() {
    println!("rayon threads: {}", rayon::current_num_threads());
    accumulate_conv1();
    reconstruct_conv10();
}

/// `H` of 256 images × 111 × 111 columns of 147 inputs.
fn accumulate_conv1() {
    timed_hessian(147, 111 * 111, 48, 0);
}

/// Accumulate and time `H` over [`IMAGES`] synthetic images of `positions`
/// columns of `dim` inputs (`sources` latent sources, seeds from `seed`).
fn timed_hessian(dim: usize, positions: usize, sources: usize, seed: u64) -> Hessian {
    let images: Vec<Vec<f32>> = (0..DISTINCT as u64)
        .map(|s| relu_columns(dim, positions, sources, seed + s))
        .collect();
    let mut h = Hessian::new(dim).expect("dimension is valid");
    let timer = Timer::start();
    for i in 0..IMAGES {
        h.accumulate(&images[i % DISTINCT], positions)
            .expect("block has dim × positions values");
    }
    println!(
        "accumulate H: {} columns of {dim}: {}",
        h.samples(),
        timer.report()
    );
    h
}

/// Prune conv10 (1000 × 512) with reconstruction to 30, 50 and 80 %, then
/// quantize the 50 % one to 4 bits (15 shared values + the pruned zero)
/// with GPTQ.
fn reconstruct_conv10() {
    let (rows, dim) = (1000, 512);
    let h = timed_hessian(dim, 13 * 13, 128, 100);
    let mut rng = SplitMix64::new(7);
    let original: Vec<f32> = (0..rows * dim)
        .map(|_| (rng.gaussian() * (2.0 / dim as f64).sqrt()) as f32)
        .collect();

    let pruned: Vec<Vec<f32>> = SPARSITIES
        .iter()
        .map(|&s| prune_timed(&original, rows, &h, s))
        .collect();

    let mut weights = pruned[1].clone();
    let survivors: Vec<f32> = weights.iter().copied().filter(|w| *w != 0.0).collect();
    let codebook = kmeans_1d(&survivors, 15, Init::Linear, 100).centroids;
    let timer = Timer::start();
    gptq_quantize(&mut weights, rows, &h, &codebook, &GptqOptions::default()).expect("valid layer");
    println!(
        "gptq_quantize the 50 % pruned layer onto {} values: {}; output error {:.4e}",
        codebook.len(),
        timer.report(),
        output_error(&original, &weights, rows, &h).expect("same shapes")
    );
}

/// Prunes a copy of `original` to `sparsity` with reconstruction and
/// prints the time and output errors.
fn prune_timed(original: &[f32], rows: usize, h: &Hessian, sparsity: f64) -> Vec<f32> {
    let mut pruned = original.to_vec();
    let timer = Timer::start();
    let report = prune_reconstruct(
        &mut pruned,
        rows,
        h,
        sparsity,
        &ReconstructOptions::default(),
    )
    .expect("valid layer");
    println!(
        "prune_reconstruct {rows} x {} to {sparsity}: {}; output error {:.4e} vs {:.4e} for masking alone",
        h.dim(),
        timer.report(),
        report.error,
        report.masked_error
    );
    pruned
}

/// One image's im2col matrix (`dim × positions`, row-major) of correlated,
/// non-negative activations: ReLU of a random mixing of `latent` factors.
fn relu_columns(dim: usize, positions: usize, latent: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mixing: Vec<f64> = (0..dim * latent).map(|_| rng.gaussian()).collect();
    let mut columns = vec![0.0f32; dim * positions];
    let mut factors = vec![0.0f64; latent];
    for c in 0..positions {
        factors.iter_mut().for_each(|f| *f = rng.gaussian());
        for (i, row) in mixing.chunks_exact(latent).enumerate() {
            let v: f64 = row.iter().zip(&factors).map(|(m, f)| m * f).sum();
            columns[i * positions + c] = v.max(0.0) as f32;
        }
    }
    columns
}
