//! Copying LZ77 matches inside the output buffer.

/// Copies `len` bytes from `offset` bytes back to `dst`; the source may
/// overlap the destination (a repeating pattern). The caller has checked
/// `1 <= offset <= dst` and `dst + len <= out.len()`.
#[inline(always)]
pub(crate) fn copy_match(out: &mut [u8], dst: usize, offset: usize, len: usize) {
    let src = dst - offset;
    let end = dst + len;
    if offset >= 8 && len <= 64 && end + 8 <= out.len() {
        // Short matches eight bytes at a time; each read lies wholly before
        // the write, and the over-copy past `end` is overwritten by later
        // output.
        let (mut s, mut d) = (src, dst);
        while d < end {
            let mut word = [0u8; 8];
            word.copy_from_slice(&out[s..s + 8]);
            out[d..d + 8].copy_from_slice(&word);
            s += 8;
            d += 8;
        }
    } else if offset >= len {
        out.copy_within(src..src + len, dst);
    } else if offset == 1 {
        let byte = out[src];
        out[dst..end].fill(byte);
    } else if len <= 16 {
        for i in dst..end {
            out[i] = out[i - offset];
        }
    } else {
        // The copied region doubles each round and stays periodic.
        let mut d = dst;
        while d < end {
            let n = (d - src).min(end - d);
            out.copy_within(src..src + n, d);
            d += n;
        }
    }
}

/// Copies a match of at most 24 bytes from `offset` bytes back as three
/// words, whatever its length: no branch on the length, and up to 23 bytes
/// past the match written, which later output overwrites. Returns false,
/// copying nothing, when fewer than 24 bytes of room are left. The caller
/// has checked `8 <= offset <= dst`: each word is read wholly before the
/// place it is written, after the words before it are written.
#[inline(always)]
pub(crate) fn copy_short(out: &mut [u8], dst: usize, offset: usize) -> bool {
    let Some(window) = out.get_mut(dst - offset..dst + 24) else {
        return false;
    };
    // The places written counted from the window's end (`offset` + 24
    // bytes long), so that the bounds follow from its length alone.
    let end = window.len();
    if end < 24 {
        return false;
    }
    window.copy_within(0..8, end - 24);
    window.copy_within(8..16, end - 16);
    window.copy_within(16..24, end - 8);
    true
}

/// Asks the processor to start loading the cache line of `data[at]`, when
/// `at` is inside `data`: a match's source, known some instructions before
/// it is copied, is often far back in a large window and out of cache.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch(data: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = data.get(at) {
        // SAFETY: a prefetch neither faults nor changes memory, and the
        // address is that of a byte of `data`. SSE, which the instruction
        // needs, is part of every x86-64 processor.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (byte as *const u8).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

#[cfg(test)]
mod tests {
    use super::{copy_match, copy_short, prefetch};

    #[test]
    fn prefetch_takes_any_index_and_changes_nothing() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let before = data.clone();
        for at in [0, 1, 63, 64, 4095, 4096, usize::MAX / 2, usize::MAX] {
            prefetch(&data, at);
        }
        prefetch(&[], 0);
        assert_eq!(data, before);
    }

    fn naive(out: &mut [u8], dst: usize, offset: usize, len: usize) {
        for i in dst..dst + len {
            out[i] = out[i - offset];
        }
    }

    #[test]
    fn matches_a_byte_by_byte_copy_for_every_overlap() {
        for offset in 1..20 {
            for len in (1..70).chain([100, 200, 300]) {
                for slack in [0, 3, 8, 40] {
                    let size = 20 + len + slack;
                    let mut a: Vec<u8> = (0..size).map(|b| (b as u8).wrapping_mul(37)).collect();
                    let mut b = a.clone();
                    copy_match(&mut a, 20, offset, len);
                    naive(&mut b, 20, offset, len);
                    assert_eq!(a[..20 + len], b[..20 + len], "offset {offset} len {len}");
                }
            }
        }
    }

    #[test]
    fn short_copies_match_a_byte_by_byte_copy() {
        for offset in 8..40 {
            for len in 1..=24 {
                let size = 40 + 24;
                let mut a: Vec<u8> = (0..size).map(|b| (b as u8).wrapping_mul(37)).collect();
                let mut b = a.clone();
                assert!(copy_short(&mut a, 40, offset));
                naive(&mut b, 40, offset, len);
                assert_eq!(a[..40 + len], b[..40 + len], "offset {offset} len {len}");
            }
        }
    }
}
