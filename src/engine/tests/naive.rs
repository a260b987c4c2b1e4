//! Reference implementations written as plain direct loops straight from
//! the definitions (Caffe's formulas), sharing no code with the engine.

use formats::{Clip, Conv, Layer, Lrn, Pool, PoolKind};

use crate::engine::Tensor;

/// Direct convolution: every output sums `in_c * kh * kw` products, over
/// the input channels of its group.
pub fn conv(input: &Tensor, layer: &Layer, c: &Conv) -> Tensor {
    let [n, _, h, w] = input.shape;
    let [out_c, in_c, kh, kw] = layer.shape;
    let group_out_c = out_c / c.groups;
    let out_h = (h + 2 * c.pad_h - kh) / c.stride_h + 1;
    let out_w = (w + 2 * c.pad_w - kw) / c.stride_w + 1;
    let mut out = Tensor::zeros([n, out_c, out_h, out_w]).unwrap();
    for b in 0..n {
        for o in 0..out_c {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let mut sum = layer.bias[o];
                    for i in 0..in_c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let y = (oy * c.stride_h + ky) as isize - c.pad_h as isize;
                                let x = (ox * c.stride_w + kx) as isize - c.pad_w as isize;
                                if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                    continue;
                                }
                                let weight = layer.weights[((o * in_c + i) * kh + ky) * kw + kx];
                                let channel = o / group_out_c * in_c + i;
                                sum +=
                                    weight * input.get(b, channel, y as usize, x as usize).unwrap();
                            }
                        }
                    }
                    *out.get_mut(b, o, oy, ox).unwrap() = if c.relu { sum.max(0.0) } else { sum };
                }
            }
        }
    }
    out
}

/// Pooling output length as Caffe's code computes it (in floating point),
/// with PyTorch's rule that a window may not start past the input.
pub fn pool_len(len: usize, kernel: usize, stride: usize, pad: usize, ceil_mode: bool) -> usize {
    let span = (len + 2 * pad - kernel) as f32 / stride as f32;
    let out = if ceil_mode {
        span.ceil() as usize + 1
    } else {
        span.floor() as usize + 1
    };
    if ceil_mode && (out - 1) * stride >= len + pad {
        out - 1
    } else {
        out
    }
}

/// One pooling window over an `h x w` plane: how many of its cells lie
/// inside the padded input, and the real (unpadded) cells among them, in
/// row-major order. Shared by the float32 reference here and the float64
/// one of the gradient tests.
pub struct PoolWindow {
    pub cells: usize,
    pub real: Vec<(usize, usize)>,
}

impl PoolWindow {
    /// The window of output `(oy, ox)`, visited in padded coordinates.
    pub fn at(p: &Pool, [h, w]: [usize; 2], oy: usize, ox: usize) -> Self {
        let mut window = PoolWindow {
            cells: 0,
            real: Vec::new(),
        };
        for ky in 0..p.kernel_h {
            for kx in 0..p.kernel_w {
                let (py, px) = (oy * p.stride_h + ky, ox * p.stride_w + kx);
                if py >= h + 2 * p.pad_h || px >= w + 2 * p.pad_w {
                    continue;
                }
                window.cells += 1;
                if let (Some(y), Some(x)) = (py.checked_sub(p.pad_h), px.checked_sub(p.pad_w)) {
                    if y < h && x < w {
                        window.real.push((y, x));
                    }
                }
            }
        }
        window
    }

    /// The window's output, in float64: max over the real cells; average
    /// = their sum (in window order) over the cells inside the padded
    /// input, or over the real cells without `count_include_pad`.
    pub fn reduce(&self, p: &Pool, value: impl Fn(usize, usize) -> f64) -> f64 {
        let values = self.real.iter().map(|&(y, x)| value(y, x));
        match p.kind {
            PoolKind::Max => values.fold(f64::NEG_INFINITY, f64::max),
            PoolKind::Avg if p.count_include_pad => values.sum::<f64>() / self.cells as f64,
            PoolKind::Avg => values.sum::<f64>() / self.real.len() as f64,
        }
    }
}

/// Direct pooling: every window of [`PoolWindow`], rounded to float32.
pub fn pool(input: &Tensor, p: &Pool) -> Tensor {
    let [n, c, h, w] = input.shape;
    let out_h = pool_len(h, p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
    let out_w = pool_len(w, p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
    let mut out = Tensor::zeros([n, c, out_h, out_w]).unwrap();
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let window = PoolWindow::at(p, [h, w], oy, ox);
                    let value = |y, x| f64::from(input.get(b, ch, y, x).unwrap());
                    *out.get_mut(b, ch, oy, ox).unwrap() = window.reduce(p, value) as f32;
                }
            }
        }
    }
    out
}

/// Mean of each feature plane.
pub fn global_avg_pool(input: &Tensor) -> Tensor {
    let [n, c, h, w] = input.shape;
    let mut out = Tensor::zeros([n, c, 1, 1]).unwrap();
    for b in 0..n {
        for ch in 0..c {
            let mut sum = 0.0f64;
            for y in 0..h {
                for x in 0..w {
                    sum += f64::from(input.get(b, ch, y, x).unwrap());
                }
            }
            *out.get_mut(b, ch, 0, 0).unwrap() = (sum / (h * w) as f64) as f32;
        }
    }
    out
}

/// Channel concatenation by indices.
pub fn concat(inputs: &[&Tensor]) -> Tensor {
    let [n, _, h, w] = inputs[0].shape;
    let channels = inputs.iter().map(|t| t.shape[1]).sum();
    let mut out = Tensor::zeros([n, channels, h, w]).unwrap();
    for b in 0..n {
        let mut base = 0;
        for t in inputs {
            for ch in 0..t.shape[1] {
                for y in 0..h {
                    for x in 0..w {
                        *out.get_mut(b, base + ch, y, x).unwrap() = t.get(b, ch, y, x).unwrap();
                    }
                }
            }
            base += t.shape[1];
        }
    }
    out
}

/// exp(x_c) / sum_c' exp(x_c') at each position, in f64.
pub fn softmax(input: &Tensor) -> Tensor {
    let [n, c, h, w] = input.shape;
    let mut out = input.clone();
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let total: f64 = (0..c)
                    .map(|ch| f64::from(input.get(b, ch, y, x).unwrap()).exp())
                    .sum();
                for ch in 0..c {
                    let e = f64::from(input.get(b, ch, y, x).unwrap()).exp();
                    *out.get_mut(b, ch, y, x).unwrap() = (e / total) as f32;
                }
            }
        }
    }
    out
}

/// max(x, 0) for every value.
pub fn relu(input: &Tensor) -> Tensor {
    Tensor {
        shape: input.shape,
        data: input
            .data
            .iter()
            .map(|&v| if v > 0.0 { v } else { 0.0 })
            .collect(),
    }
}

/// LRN across channels from its formula, the window sum in f64.
pub fn lrn(input: &Tensor, p: &Lrn) -> Tensor {
    let [n, c, h, w] = input.shape;
    let mut out = input.clone();
    for b in 0..n {
        for ch in 0..c {
            let first = ch as isize - ((p.size - 1) / 2) as isize;
            let last = ch + p.size / 2;
            for y in 0..h {
                for x in 0..w {
                    let sum: f64 = (first.max(0) as usize..=last.min(c - 1))
                        .map(|i| f64::from(input.get(b, i, y, x).unwrap()).powi(2))
                        .sum();
                    let scale = f64::from(p.bias) + f64::from(p.alpha) / p.size as f64 * sum;
                    let v = f64::from(input.get(b, ch, y, x).unwrap());
                    *out.get_mut(b, ch, y, x).unwrap() = (v / scale.powf(f64::from(p.beta))) as f32;
                }
            }
        }
    }
    out
}

/// min(max(x, min), max) for every value.
pub fn clip(input: &Tensor, c: &Clip) -> Tensor {
    Tensor {
        shape: input.shape,
        data: input
            .data
            .iter()
            .map(|&v| {
                if v < c.min {
                    c.min
                } else if v > c.max {
                    c.max
                } else {
                    v
                }
            })
            .collect(),
    }
}
