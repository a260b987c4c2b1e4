//! How long `--target-size` takes to estimate the encoded size of every
//! option of every layer (the allocation's cost table), apart from the
//! sensitivity trials before it.
//!
//! The table encodes the whole model once per (sparsity, bits) option of
//! the ladder: magnitude pruning, k-means weight sharing and the `.sqz`
//! encoder. The damages do not change its cost, so they are left at zero
//! here. Prints the time of `cost_table` and a checksum of the estimated
//! bytes, so two builds can be compared for both speed and result.
//!
//! `cargo run --release --example cost_table -- MODEL`

use std::path::PathBuf;
use std::time::Instant;

use formats::{read_model, ReadOptions};
use sqz::pipeline::allocation::cost_table;
use sqz::pipeline::quantize::KMeans;
use sqz::pipeline::sensitivity::{Damage, Ladder, LayerSensitivity, Sensitivity};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model] = args.as_slice() else {
        anyhow::bail!("usage: cost_table MODEL");
    };
    let model = read_model(&PathBuf::from(model), &ReadOptions::default())?;
    let ladder = Ladder::default();
    let none = Damage {
        kl: 0.0,
        agreement: 1.0,
    };
    let sensitivity = Sensitivity {
        layers: model
            .layers
            .iter()
            .map(|l| LayerSensitivity {
                name: l.name.clone(),
                weights: l.weight_count(),
                prune: vec![none; ladder.sparsities.len()],
                quantize: vec![none; ladder.bits.len()],
            })
            .collect(),
        ladder,
        images: 0,
    };
    let start = Instant::now();
    let table = cost_table(&model, &sensitivity, &KMeans::default(), false)?;
    let seconds = start.elapsed().as_secs_f64();
    let options: usize = table.layers.iter().map(|l| l.options.len()).sum();
    let checksum: usize = table
        .layers
        .iter()
        .flat_map(|l| &l.options)
        .map(|o| o.bytes)
        .sum();
    println!(
        "{} layers, {options} options, {} weights: cost table in {seconds:.2} s (sum of option bytes {checksum}, fixed bytes {})",
        table.layers.len(),
        model.layers.iter().map(|l| l.weight_count()).sum::<usize>(),
        table.fixed_bytes
    );
    Ok(())
}
