//! A float64 evaluator of a model's graph, written as direct loops from the
//! operations' definitions and sharing no code with the engine: the
//! function that finite differences differentiate.

use std::collections::HashMap;

use formats::{Conv, Lrn, Model, Op, Pool};

use crate::engine::tests::naive::{pool_len, PoolWindow};

/// A float64 NCHW blob.
#[derive(Clone)]
pub struct Blob {
    pub shape: [usize; 4],
    pub data: Vec<f64>,
}

impl Blob {
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        let [_, channels, h, w] = self.shape;
        self.data[((n * channels + c) * h + y) * w + x]
    }
}

/// The weights and biases of every layer, in float64.
#[derive(Clone)]
pub struct Params {
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<Vec<f64>>,
}

impl Params {
    pub fn of(model: &Model) -> Self {
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect();
        Params {
            weights: model.layers.iter().map(|l| widen(&l.weights)).collect(),
            bias: model.layers.iter().map(|l| widen(&l.bias)).collect(),
        }
    }
}

/// The graph's output for `input` with `params` instead of the model's own.
pub fn forward(model: &Model, params: &Params, input: &Blob) -> Blob {
    let mut blobs: HashMap<&str, Blob> =
        HashMap::from([(model.graph.input.as_str(), input.clone())]);
    for node in &model.graph.nodes {
        let inputs: Vec<&Blob> = node
            .inputs
            .iter()
            .map(|name| &blobs[name.as_str()])
            .collect();
        let output = match &node.op {
            Op::Conv(c) => conv(inputs[0], model.layers[c.layer].shape, params, c),
            Op::Relu => map(inputs[0], |v| v.max(0.0)),
            Op::Dropout => inputs[0].clone(),
            Op::Flatten => {
                let [n, c, h, w] = inputs[0].shape;
                Blob {
                    shape: [n, c * h * w, 1, 1],
                    data: inputs[0].data.clone(),
                }
            }
            Op::Softmax => softmax(inputs[0]),
            Op::Pool(p) => pool(inputs[0], p),
            Op::GlobalAvgPool => global_avg_pool(inputs[0]),
            Op::Concat => concat(&inputs),
            Op::Add => {
                let mut sum = inputs[0].clone();
                for term in &inputs[1..] {
                    sum.data
                        .iter_mut()
                        .zip(&term.data)
                        .for_each(|(s, t)| *s += t);
                }
                sum
            }
            Op::Lrn(p) => lrn(inputs[0], p),
            Op::Clip(c) => map(inputs[0], |v| v.max(f64::from(c.min)).min(f64::from(c.max))),
        };
        blobs.insert(&node.outputs[0], output);
    }
    blobs
        .remove(model.graph.output.as_str())
        .expect("graph output")
}

fn map(blob: &Blob, f: impl Fn(f64) -> f64) -> Blob {
    Blob {
        shape: blob.shape,
        data: blob.data.iter().map(|&v| f(v)).collect(),
    }
}

fn conv(input: &Blob, layer_shape: [usize; 4], params: &Params, c: &Conv) -> Blob {
    let [n, _, h, w] = input.shape;
    let [out_c, in_c, kh, kw] = layer_shape;
    let group_out_c = out_c / c.groups;
    let (weights, bias) = (&params.weights[c.layer], &params.bias[c.layer]);
    let out_h = (h + 2 * c.pad_h - kh) / c.stride_h + 1;
    let out_w = (w + 2 * c.pad_w - kw) / c.stride_w + 1;
    let mut data = Vec::with_capacity(n * out_c * out_h * out_w);
    for b in 0..n {
        for o in 0..out_c {
            let mut plane = vec![bias[o]; out_h * out_w];
            for i in 0..in_c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let weight = weights[((o * in_c + i) * kh + ky) * kw + kx];
                        for oy in 0..out_h {
                            let Some(y) = (oy * c.stride_h + ky).checked_sub(c.pad_h) else {
                                continue;
                            };
                            if y >= h {
                                continue;
                            }
                            for ox in 0..out_w {
                                let Some(x) = (ox * c.stride_w + kx).checked_sub(c.pad_w) else {
                                    continue;
                                };
                                if x < w {
                                    let channel = o / group_out_c * in_c + i;
                                    plane[oy * out_w + ox] += weight * input.at(b, channel, y, x);
                                }
                            }
                        }
                    }
                }
            }
            if c.relu {
                plane.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            data.extend(plane);
        }
    }
    Blob {
        shape: [n, out_c, out_h, out_w],
        data,
    }
}

/// Pooling in float64: every window of [`PoolWindow`].
fn pool(input: &Blob, p: &Pool) -> Blob {
    let [n, c, h, w] = input.shape;
    let out_h = pool_len(h, p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
    let out_w = pool_len(w, p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
    let mut data = Vec::with_capacity(n * c * out_h * out_w);
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let window = PoolWindow::at(p, [h, w], oy, ox);
                    data.push(window.reduce(p, |y, x| input.at(b, ch, y, x)));
                }
            }
        }
    }
    Blob {
        shape: [n, c, out_h, out_w],
        data,
    }
}

/// `x[c] / (bias + alpha / size * sum of x^2 over c - (size-1)/2 ..= c + size/2)^beta`.
fn lrn(input: &Blob, p: &Lrn) -> Blob {
    let [n, c, h, w] = input.shape;
    let mut data = Vec::with_capacity(input.data.len());
    for b in 0..n {
        for ch in 0..c {
            let window = ch.saturating_sub((p.size - 1) / 2)..=(ch + p.size / 2).min(c - 1);
            for y in 0..h {
                for x in 0..w {
                    let sum: f64 = window.clone().map(|i| input.at(b, i, y, x).powi(2)).sum();
                    let scale = f64::from(p.bias) + f64::from(p.alpha) / p.size as f64 * sum;
                    data.push(input.at(b, ch, y, x) / scale.powf(f64::from(p.beta)));
                }
            }
        }
    }
    Blob {
        shape: input.shape,
        data,
    }
}

fn global_avg_pool(input: &Blob) -> Blob {
    let [n, c, h, w] = input.shape;
    Blob {
        shape: [n, c, 1, 1],
        data: input
            .data
            .chunks(h * w)
            .map(|plane| plane.iter().sum::<f64>() / (h * w) as f64)
            .collect(),
    }
}

fn concat(inputs: &[&Blob]) -> Blob {
    let [n, _, h, w] = inputs[0].shape;
    let channels = inputs.iter().map(|b| b.shape[1]).sum();
    let mut data = Vec::with_capacity(n * channels * h * w);
    for b in 0..n {
        for input in inputs {
            let len = input.shape[1] * h * w;
            data.extend_from_slice(&input.data[b * len..(b + 1) * len]);
        }
    }
    Blob {
        shape: [n, channels, h, w],
        data,
    }
}

fn softmax(input: &Blob) -> Blob {
    let [n, c, h, w] = input.shape;
    let plane = h * w;
    let mut out = input.clone();
    for b in 0..n {
        for position in 0..plane {
            let index = |ch: usize| (b * c + ch) * plane + position;
            let max = (0..c)
                .map(|ch| input.data[index(ch)])
                .fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = (0..c).map(|ch| (input.data[index(ch)] - max).exp()).sum();
            for ch in 0..c {
                out.data[index(ch)] = (input.data[index(ch)] - max).exp() / total;
            }
        }
    }
    out
}
