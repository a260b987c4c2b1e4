//! Markers of a JPEG file up to its (single) scan: frame, quantisation and
//! Huffman tables, restart interval.

use crate::imaging::MAX_SIDE as MAX_SIDE_U32;

/// Largest accepted side, in pixels.
const MAX_SIDE: usize = MAX_SIDE_U32 as usize;

/// One image component as declared in the frame header.
#[derive(Debug, Clone)]
pub struct Component {
    /// Component identifier, matched by the scan header.
    pub id: u8,
    /// Horizontal and vertical sampling factors (1..=4).
    pub h: usize,
    pub v: usize,
    /// Quantisation table index.
    pub quant: usize,
    /// DC and AC Huffman table indices (from the scan header).
    pub dc_table: usize,
    pub ac_table: usize,
}

/// The frame: size and components.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub components: Vec<Component>,
    /// Largest sampling factors over the components.
    pub h_max: usize,
    pub v_max: usize,
}

/// A Huffman table as transmitted: number of codes of each length 1..=16
/// and the symbols in code order.
#[derive(Debug, Clone, Default)]
pub struct HuffmanSpec {
    pub counts: [u8; 16],
    pub symbols: Vec<u8>,
}

/// Everything needed to decode the scan.
#[derive(Debug)]
pub struct Jpeg<'a> {
    pub frame: Frame,
    /// Quantisation tables in natural (row-major) order.
    pub quant: [Option<[u16; 64]>; 4],
    pub dc: [Option<HuffmanSpec>; 4],
    pub ac: [Option<HuffmanSpec>; 4],
    /// MCUs between restart markers (0: none).
    pub restart_interval: usize,
    /// Entropy-coded data, from just after the scan header to the end of the file.
    pub scan: &'a [u8],
}

/// Zigzag position -> natural (row-major) index.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A cursor over marker segments.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<usize> {
        Some(usize::from(self.byte()?) << 8 | usize::from(self.byte()?))
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    /// The next marker code, skipping fill bytes.
    fn marker(&mut self) -> Option<u8> {
        if self.byte()? != 0xFF {
            return None;
        }
        loop {
            match self.byte()? {
                0xFF => continue,
                0x00 => return None,
                m => return Some(m),
            }
        }
    }

    /// The payload of a segment with a 16-bit length prefix.
    fn segment(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.bytes(len.checked_sub(2)?)
    }
}

/// Parse the markers up to the first scan. `None` for anything outside the
/// supported subset.
pub fn parse(data: &[u8]) -> Option<Jpeg<'_>> {
    let mut r = Reader { data, pos: 0 };
    if r.marker()? != 0xD8 {
        return None;
    }
    let mut frame: Option<Frame> = None;
    let mut quant = [None; 4];
    let (mut dc, mut ac): ([Option<HuffmanSpec>; 4], [Option<HuffmanSpec>; 4]) = Default::default();
    let mut restart_interval = 0;
    let mut jfif = false;
    let mut adobe_transform = None;
    loop {
        match r.marker()? {
            0xC0 | 0xC1 => frame = Some(parse_frame(r.segment()?)?),
            0xC4 => parse_huffman(r.segment()?, &mut dc, &mut ac)?,
            0xDB => parse_quant(r.segment()?, &mut quant)?,
            0xDD => {
                restart_interval = Reader {
                    data: r.segment()?,
                    pos: 0,
                }
                .u16()?
            }
            0xE0 => jfif |= r.segment()?.starts_with(b"JFIF\0"),
            0xEE => {
                let s = r.segment()?;
                if s.starts_with(b"Adobe") && s.len() >= 12 {
                    adobe_transform = Some(s[11]);
                }
            }
            0xDA => {
                let mut frame = frame?;
                parse_scan_header(r.segment()?, &mut frame)?;
                if !ycc_or_grey(&frame, jfif, adobe_transform) {
                    return None;
                }
                return Some(Jpeg {
                    frame,
                    quant,
                    dc,
                    ac,
                    restart_interval,
                    scan: &data[r.pos..],
                });
            }
            // Other SOFs: progressive, lossless, arithmetic, hierarchical.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            // EOI before any scan, DNL, or stray RST/TEM markers.
            0xD9 | 0xDC | 0x01 | 0xD0..=0xD7 => return None,
            _ => {
                r.segment()?;
            }
        }
    }
}

/// Whether libjpeg would treat the components as grey or YCbCr (and so
/// convert to RGB the way [`super::color`] does). Following libjpeg's
/// guess, three components are YCbCr with a JFIF marker; otherwise RGB when
/// an Adobe marker says "no transform" (0) or, without Adobe marker, when
/// their ids spell "RGB".
fn ycc_or_grey(frame: &Frame, jfif: bool, adobe_transform: Option<u8>) -> bool {
    match frame.components.len() {
        1 => true,
        3 if jfif => true,
        3 => match adobe_transform {
            Some(transform) => transform != 0,
            None => frame.components.iter().map(|c| c.id).ne(*b"RGB"),
        },
        _ => false,
    }
}

fn parse_frame(s: &[u8]) -> Option<Frame> {
    let mut r = Reader { data: s, pos: 0 };
    if r.byte()? != 8 {
        return None;
    }
    let height = r.u16()?;
    let width = r.u16()?;
    let count = usize::from(r.byte()?);
    if width == 0
        || height == 0
        || !(count == 1 || count == 3)
        || width > MAX_SIDE
        || height > MAX_SIDE
    {
        return None;
    }
    let mut components = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.byte()?;
        let sampling = r.byte()?;
        let quant = usize::from(r.byte()?);
        let (h, v) = (usize::from(sampling >> 4), usize::from(sampling & 15));
        if !(1..=4).contains(&h)
            || !(1..=4).contains(&v)
            || quant > 3
            || components.iter().any(|c: &Component| c.id == id)
        {
            return None;
        }
        components.push(Component {
            id,
            h,
            v,
            quant,
            dc_table: 0,
            ac_table: 0,
        });
    }
    if count == 1 {
        // A single component forms non-interleaved MCUs of one block; its
        // sampling factors do not matter.
        components[0].h = 1;
        components[0].v = 1;
    }
    let h_max = components.iter().map(|c| c.h).max()?;
    let v_max = components.iter().map(|c| c.v).max()?;
    Some(Frame {
        width,
        height,
        components,
        h_max,
        v_max,
    })
}

fn parse_huffman(
    s: &[u8],
    dc: &mut [Option<HuffmanSpec>; 4],
    ac: &mut [Option<HuffmanSpec>; 4],
) -> Option<()> {
    let mut r = Reader { data: s, pos: 0 };
    while r.pos < s.len() {
        let info = r.byte()?;
        let (class, index) = (info >> 4, usize::from(info & 15));
        let counts: [u8; 16] = r.bytes(16)?.try_into().ok()?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || index > 3 {
            return None;
        }
        let spec = HuffmanSpec {
            counts,
            symbols: r.bytes(total)?.to_vec(),
        };
        match class {
            0 => dc[index] = Some(spec),
            1 => ac[index] = Some(spec),
            _ => return None,
        }
    }
    Some(())
}

fn parse_quant(s: &[u8], quant: &mut [Option<[u16; 64]>; 4]) -> Option<()> {
    let mut r = Reader { data: s, pos: 0 };
    while r.pos < s.len() {
        let info = r.byte()?;
        let (precision, index) = (info >> 4, usize::from(info & 15));
        if index > 3 {
            return None;
        }
        let mut table = [0u16; 64];
        for &natural in &ZIGZAG {
            table[natural] = match precision {
                0 => u16::from(r.byte()?),
                1 => r.u16()? as u16,
                _ => return None,
            };
        }
        quant[index] = Some(table);
    }
    Some(())
}

/// Read the scan header into the frame's components. Only a single scan
/// holding every component with the full spectral range is supported.
fn parse_scan_header(s: &[u8], frame: &mut Frame) -> Option<()> {
    let mut r = Reader { data: s, pos: 0 };
    let count = usize::from(r.byte()?);
    if count != frame.components.len() {
        return None;
    }
    for component in frame.components.iter_mut() {
        let id = r.byte()?;
        let tables = r.byte()?;
        // Scan components must appear in frame order.
        if id != component.id || tables >> 4 > 3 || tables & 15 > 3 {
            return None;
        }
        component.dc_table = usize::from(tables >> 4);
        component.ac_table = usize::from(tables & 15);
    }
    let (start, end, approx) = (r.byte()?, r.byte()?, r.byte()?);
    (start == 0 && end == 63 && approx == 0 && r.pos == s.len()).then_some(())
}
