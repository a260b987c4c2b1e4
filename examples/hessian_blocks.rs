//! What the block-diagonal calibration Hessian costs in accuracy, on a real
//! network whose layers all fit the full Hessian.
//!
//! Every layer of MODEL is pruned to 50 % and shared at 6 bits alone, on
//! its input Hessian from the original network over N calibration images,
//! once with the full Hessian and once with blocks of at most B inputs for
//! each B given. Per layer it prints the output error `‖(W − Ŵ) X‖²`
//! measured with the full Hessian (the block-diagonal fit only sees the
//! diagonal blocks); then it compresses every layer at once each way and
//! prints the top-1 agreement of the network with the original on the same
//! images.
//!
//! `cargo run --release --example hessian_blocks -- MODEL IMAGES N B...`

use std::path::PathBuf;

use anyhow::Context;
use compress::calib::{output_error_blocks, Refit, MAX_DIM};
use formats::{read_model, Model, ReadOptions};
use sqz::engine::{forward, forward_hooked, Tensor};
use sqz::eval::{output_rows, top_k};
use sqz::pipeline::calib_images::CalibrationImages;
use sqz::pipeline::calibration::{
    compress_layer_with_hessian, CalibrationOptions, CalibrationSpec, OriginalHessians,
};
use sqz::pipeline::layer_hessian::LayerHessian;
use sqz::pipeline::params::Bits;
use sqz::pipeline::quantize::{KMeans, QuantizeSpec};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, images, count, blocks @ ..] = args.as_slice() else {
        anyhow::bail!("usage: hessian_blocks MODEL IMAGES N B...");
    };
    let model = read_model(&PathBuf::from(model), &ReadOptions::default())?;
    let images = CalibrationImages {
        dir: images.into(),
        count: count.parse().context("N")?,
    };
    let batch = images.load(&model, images.count)?;
    let blocks: Vec<usize> = blocks
        .iter()
        .map(|b| b.parse().context("B"))
        .collect::<anyhow::Result<_>>()?;
    let full = hessians(&model, &batch, MAX_DIM)?;
    let spec = CalibrationSpec {
        prune: None,
        quantize: Some(QuantizeSpec::uniform(Bits::new(6)?, KMeans::default())),
        half: false,
        options: CalibrationOptions::default(),
    };
    let compress = |h: &[LayerHessian]| -> anyhow::Result<Model> {
        let mut out = model.clone();
        for ((layer, h), target) in out.layers.iter_mut().zip(h).zip(&model.layers) {
            *layer = compress_layer_with_hessian(target, h, None, Some(0.5), &spec, Refit::Exact)?;
        }
        Ok(out)
    };
    let reference = forward(&model, &batch)?;
    let with_full = compress(&full)?;
    println!(
        "all layers, full Hessian: top-1 agreement {:.1} %",
        agreement(&reference, &forward(&with_full, &batch)?)
    );
    for &block in &blocks {
        let split = hessians(&model, &batch, block)?;
        let with_blocks = compress(&split)?;
        for (i, layer) in model.layers.iter().enumerate() {
            if split[i].groups()[0].block_count() == 1 {
                continue;
            }
            let error = |compressed: &Model| -> anyhow::Result<f64> {
                let rows = layer.shape[0] / full[i].groups().len();
                let dim = full[i].groups()[0].dim();
                let parts = layer
                    .weights
                    .chunks_exact(rows * dim)
                    .zip(compressed.layers[i].weights.chunks_exact(rows * dim))
                    .zip(full[i].groups());
                let mut sum = 0.0;
                for ((before, after), h) in parts {
                    sum += output_error_blocks(before, after, rows, h)?;
                }
                Ok(sum)
            };
            let (one, many) = (error(&with_full)?, error(&with_blocks)?);
            println!(
                "{:<24} {:>5} inputs, {} blocks of <= {block}: output error {:.4e} vs {:.4e} full ({:.3}x)",
                layer.name,
                full[i].groups()[0].dim(),
                split[i].groups()[0].block_count(),
                many,
                one,
                many / one
            );
        }
        println!(
            "all layers, blocks of <= {block}: top-1 agreement {:.1} %",
            agreement(&reference, &forward(&with_blocks, &batch)?)
        );
    }
    Ok(())
}

/// Every layer's Hessian from a pass of the original network.
fn hessians(model: &Model, batch: &Tensor, block: usize) -> anyhow::Result<Vec<LayerHessian>> {
    let mut hessians = OriginalHessians::new(model, block);
    forward_hooked(model, batch, &mut |_, node, inputs| {
        hessians.observe(node, inputs);
        None
    })?;
    Ok(hessians.finish()?)
}

/// Percentage of images whose top-1 class is the same in both outputs.
fn agreement(a: &Tensor, b: &Tensor) -> f64 {
    let rows = output_rows(a).zip(output_rows(b));
    let (same, total) = rows.fold((0, 0), |(same, total), (x, y)| {
        (same + usize::from(top_k(x, 1) == top_k(y, 1)), total + 1)
    });
    100.0 * same as f64 / f64::from(total.max(1) as u32)
}
