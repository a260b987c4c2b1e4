//! Huffman decoding of the scan into per-component sample planes (each
//! block run through the IDCT as soon as it is decoded).

use super::header::{HuffmanSpec, Jpeg, ZIGZAG};
use super::idct;

/// Decoded samples of one component, padded to whole blocks.
pub struct Plane {
    pub data: Vec<u8>,
    /// Samples per row (a multiple of 8).
    pub stride: usize,
}

/// A Huffman decoding table in libjpeg's form plus an 8-bit lookahead.
struct Huffman {
    /// For each 8-bit prefix: `(code length, symbol)` of a code of at most
    /// 8 bits starting with it, length 0 if none.
    fast: [(u8, u8); 256],
    /// Largest code of each length (index = length), -1 if none.
    max_code: [i32; 17],
    /// Index in `symbols` of the first code of each length minus that code.
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    /// Build the canonical code of `spec`; `None` if the lengths overflow
    /// (libjpeg rejects such tables too).
    fn new(spec: &HuffmanSpec) -> Option<Huffman> {
        let mut table = Huffman {
            fast: [(0, 0); 256],
            max_code: [-1; 17],
            offset: [0; 17],
            symbols: spec.symbols.clone(),
        };
        let mut code = 0i32;
        let mut index = 0usize;
        for length in 1..=16 {
            let count = usize::from(spec.counts[length - 1]);
            if count > 0 {
                table.offset[length] = index as i32 - code;
                for _ in 0..count {
                    // As in libjpeg, codes must fit in their length without
                    // being all ones.
                    if code + 1 >= 1 << length {
                        return None;
                    }
                    if length <= 8 {
                        let shift = 8 - length;
                        for low in 0..1usize << shift {
                            table.fast[((code as usize) << shift) | low] =
                                (length as u8, spec.symbols[index]);
                        }
                    }
                    code += 1;
                    index += 1;
                }
                table.max_code[length] = code - 1;
            }
            code <<= 1;
        }
        Some(table)
    }
}

/// Reads entropy-coded bits, removing byte stuffing and stopping at markers.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    bits: u32,
    /// Zero bits appended after the data ran out or a marker was reached;
    /// consuming any of them means the scan is truncated or corrupt.
    padding: u32,
    /// Position of the marker that stopped reading, if any.
    marker: Option<usize>,
    overrun: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            bits: 0,
            padding: 0,
            marker: None,
            overrun: false,
        }
    }

    /// Fill the accumulator to more than 56 bits.
    fn fill(&mut self) {
        while self.bits <= 56 {
            let byte = if self.marker.is_some() || self.pos >= self.data.len() {
                self.padding += 8;
                0
            } else if self.data[self.pos] != 0xFF {
                self.pos += 1;
                self.data[self.pos - 1]
            } else {
                // 0xFF 0x00 is a data byte 0xFF (after optional fill 0xFFs);
                // 0xFF followed by anything else is a marker.
                let mut next = self.pos + 1;
                while self.data.get(next) == Some(&0xFF) {
                    next += 1;
                }
                if self.data.get(next) == Some(&0x00) {
                    self.pos = next + 1;
                    0xFF
                } else {
                    self.marker = Some(next - 1);
                    self.padding += 8;
                    0
                }
            };
            self.acc |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
        }
    }

    fn peek(&mut self, n: u32) -> u32 {
        if self.bits < n {
            self.fill();
        }
        (self.acc >> (64 - n)) as u32
    }

    fn consume(&mut self, n: u32) {
        if self.bits - n < self.padding {
            self.overrun = true;
        }
        self.acc <<= n;
        self.bits -= n;
    }

    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Decode one Huffman symbol; `None` for an invalid code.
    fn symbol(&mut self, table: &Huffman) -> Option<u8> {
        let (length, symbol) = table.fast[self.peek(8) as usize];
        if length > 0 {
            self.consume(u32::from(length));
            return Some(symbol);
        }
        let mut code = self.bits(8) as i32;
        let mut length = 8;
        while code > table.max_code[length] {
            length += 1;
            if length > 16 {
                return None;
            }
            code = (code << 1) | self.bits(1) as i32;
        }
        table
            .symbols
            .get(usize::try_from(table.offset[length] + code).ok()?)
            .copied()
    }

    /// Skip to just after the restart marker `RSTn`, `n = index % 8`.
    fn restart(&mut self, index: usize) -> Option<()> {
        let at = self.marker?;
        if self.data.get(at + 1) != Some(&(0xD0 + (index % 8) as u8)) {
            return None;
        }
        *self = BitReader {
            pos: at + 2,
            ..BitReader::new(self.data)
        };
        Some(())
    }
}

/// Sign-extend a received `size`-bit magnitude (JPEG's `EXTEND`).
fn extend(value: u32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if value < 1 << (size - 1) {
        value as i32 - (1 << size) + 1
    } else {
        value as i32
    }
}

/// Decode one block's coefficients (natural order, 16-bit as in libjpeg).
fn decode_block(
    r: &mut BitReader,
    dc: &Huffman,
    ac: &Huffman,
    predictor: &mut i32,
) -> Option<[i16; 64]> {
    let mut block = [0i16; 64];
    let size = u32::from(r.symbol(dc)?);
    if size > 16 {
        return None;
    }
    *predictor = predictor.wrapping_add(extend(r.bits(size), size));
    block[0] = *predictor as i16;
    let mut k = 1;
    while k < 64 {
        let rs = r.symbol(ac)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
            continue;
        }
        k += run;
        block[*ZIGZAG.get(k)?] = extend(r.bits(size), size) as i16;
        k += 1;
    }
    Some(block)
}

/// Decode the scan into one plane per frame component.
pub fn decode_scan(jpeg: &Jpeg) -> Option<Vec<Plane>> {
    let frame = &jpeg.frame;
    let (mcu_w, mcu_h) = (8 * frame.h_max, 8 * frame.v_max);
    let (mcus_x, mcus_y) = (frame.width.div_ceil(mcu_w), frame.height.div_ceil(mcu_h));
    // Every block takes at least two bits (a DC code and an end of block),
    // which bounds what an honest header can announce for this much data.
    let blocks: usize = frame
        .components
        .iter()
        .map(|c| mcus_x * mcus_y * c.h * c.v)
        .sum();
    if blocks > 4 * jpeg.scan.len() + 64 {
        return None;
    }
    let mut tables = Vec::with_capacity(frame.components.len());
    let mut planes = Vec::with_capacity(frame.components.len());
    for c in &frame.components {
        let dc = Huffman::new(jpeg.dc[c.dc_table].as_ref()?)?;
        let ac = Huffman::new(jpeg.ac[c.ac_table].as_ref()?)?;
        tables.push((dc, ac, jpeg.quant[c.quant].as_ref()?));
        let stride = mcus_x * c.h * 8;
        planes.push(Plane {
            data: vec![0; stride * mcus_y * c.v * 8],
            stride,
        });
    }

    let mut reader = BitReader::new(jpeg.scan);
    let mut predictors = vec![0i32; frame.components.len()];
    let mut restarts = 0;
    for mcu in 0..mcus_x * mcus_y {
        if jpeg.restart_interval > 0 && mcu > 0 && mcu % jpeg.restart_interval == 0 {
            reader.restart(restarts)?;
            restarts += 1;
            predictors.iter_mut().for_each(|p| *p = 0);
        }
        let (mx, my) = (mcu % mcus_x, mcu / mcus_x);
        for (i, c) in frame.components.iter().enumerate() {
            let (dc, ac, quant) = &tables[i];
            let plane = &mut planes[i];
            for by in 0..c.v {
                for bx in 0..c.h {
                    let block = decode_block(&mut reader, dc, ac, &mut predictors[i])?;
                    let (x, y) = ((mx * c.h + bx) * 8, (my * c.v + by) * 8);
                    idct::islow(
                        &block,
                        quant,
                        &mut plane.data[y * plane.stride + x..],
                        plane.stride,
                    );
                }
            }
        }
    }
    (!reader.overrun).then_some(planes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(counts: &[(usize, u8)], symbols: usize) -> HuffmanSpec {
        let mut c = [0u8; 16];
        for &(length, n) in counts {
            c[length - 1] = n;
        }
        HuffmanSpec {
            counts: c,
            symbols: (0..symbols as u8).collect(),
        }
    }

    #[test]
    fn rejects_overfull_code_lengths() {
        assert!(Huffman::new(&spec(&[(1, 1)], 1)).is_some());
        assert!(Huffman::new(&spec(&[(1, 2)], 2)).is_none(), "all-ones code");
        assert!(
            Huffman::new(&spec(&[(1, 3)], 3)).is_none(),
            "too many codes"
        );
        assert!(Huffman::new(&spec(&[(2, 3), (3, 1)], 4)).is_some());
        assert!(Huffman::new(&spec(&[(16, 255)], 255)).is_some());
    }

    #[test]
    fn decodes_long_and_short_codes() {
        // Lengths 2, 2, 3, 10: codes 00, 01, 100, 1010000000.
        let table = Huffman::new(&spec(&[(2, 2), (3, 1), (10, 1)], 4)).expect("valid");
        // Symbols 1, 3, 2, 0 = 01 1010000000 100 00, padded with ones.
        let data = [0b0110_1000, 0b0000_1000, 0b0111_1111];
        let mut r = BitReader::new(&data);
        let got: Vec<Option<u8>> = (0..4).map(|_| r.symbol(&table)).collect();
        assert_eq!(got, vec![Some(1), Some(3), Some(2), Some(0)]);
        assert!(!r.overrun);
        // Reading on consumes padding past the end of the data.
        let _ = r.symbol(&table);
        let _ = r.symbol(&table);
        assert!(r.overrun);
    }

    #[test]
    fn extend_follows_the_jpeg_sign_convention() {
        assert_eq!(extend(0, 0), 0);
        assert_eq!(extend(0, 1), -1);
        assert_eq!(extend(1, 1), 1);
        assert_eq!(extend(0b010, 3), -5);
        assert_eq!(extend(0b110, 3), 6);
        assert_eq!(extend(2047, 11), 2047);
    }
}
