//! Our decoder against wimlib's on the same chunks, interleaved in one
//! process on one thread, for `scripts/bench-codecs.sh`.
//!
//! Usage: codec_interleaved LIBWIM xpress|lzx|lzms|lzms-read PACK
//!                          [--passes N] [--slice-mib M] [--log FILE]
//!
//! LIBWIM is the path of the reference wimlib's shared library; its public
//! `wimlib_decompress()` is what its apply uses. PACK is a chunk pack
//! (`scripts/lzms_chunks.py --pack`). Both decoders first decode every chunk
//! once and their outputs are compared. Then the pack is cut into slices of
//! consecutive chunks, at least M MiB of output each (default 1), and each
//! slice is decoded four times, ours, wimlib's, wimlib's, ours, N passes
//! over the pack (default 10). A sample is one slice's four decodes: wimlib's
//! two times over ours, which is our throughput relative to wimlib's on that
//! slice. The four decodes take a few milliseconds, too short for the
//! machine's speed to drift much, and either decoder runs first and second
//! equally often, so warm caches favour neither.
//!
//! Times come from the monotonic clock: one thread, so they are CPU time
//! unless the thread was preempted, which moves a few samples only, and the
//! median is not moved by a few samples. The result line:
//! `samples=S ours_mbs=A wimlib_mbs=B ratio=R low=L high=H`, R the median
//! of the samples, [L, H] its 95% confidence interval (sign test: order
//! statistics, nothing assumed about how the samples spread), A and B the
//! MB/s of output over each side's total time. With `--log FILE`, each
//! sample is appended as `slice pass ours_ns wimlib_ns`.

// A benchmark program reports on stdout; the library itself never prints.
#![allow(clippy::print_stdout)]
// Calling the reference library through its C interface needs `unsafe`;
// the product's code does not use this program.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io::Write;
use std::time::Instant;

use containerimage_provider::wim::codec::{decompressor, Compression};

mod common;
use common::{chunks, decode as ours};

type CreateFn = unsafe extern "C" fn(u32, usize, *mut *mut c_void) -> i32;
type DecompressFn =
    unsafe extern "C" fn(*const c_void, usize, *mut c_void, usize, *mut c_void) -> i32;
type FreeFn = unsafe extern "C" fn(*mut c_void);

/// wimlib's decompressor for one codec, through its public interface.
struct Wimlib {
    _library: libloading::Library,
    decompress: DecompressFn,
    free: FreeFn,
    handle: *mut c_void,
}

impl Wimlib {
    fn open(path: &str, codec: Compression, max: usize) -> Result<Self, String> {
        let ctype = match codec {
            Compression::Xpress => 1,
            Compression::Lzx => 2,
            Compression::Lzms => 3,
            _ => return Err("no such codec in wimlib".to_owned()),
        };
        // SAFETY: loading wimlib runs its initialisers, which only set up
        // its own state; the symbols are looked up by their documented
        // names and given their documented C signatures (wimlib.h).
        unsafe {
            let library = libloading::Library::new(path).map_err(|e| format!("{path}: {e}"))?;
            let create: CreateFn = *library
                .get::<CreateFn>(b"wimlib_create_decompressor\0")
                .map_err(|e| e.to_string())?;
            let decompress: DecompressFn = *library
                .get::<DecompressFn>(b"wimlib_decompress\0")
                .map_err(|e| e.to_string())?;
            let free: FreeFn = *library
                .get::<FreeFn>(b"wimlib_free_decompressor\0")
                .map_err(|e| e.to_string())?;
            let mut handle = std::ptr::null_mut();
            if create(ctype, max, &mut handle) != 0 || handle.is_null() {
                return Err("wimlib_create_decompressor failed".to_owned());
            }
            Ok(Wimlib {
                _library: library,
                decompress,
                free,
                handle,
            })
        }
    }

    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), String> {
        // SAFETY: both buffers are valid for the lengths passed, the output
        // is not aliased, and the handle is live until `drop`.
        let status = unsafe {
            (self.decompress)(
                input.as_ptr().cast(),
                input.len(),
                output.as_mut_ptr().cast(),
                output.len(),
                self.handle,
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err("wimlib could not decode a chunk".to_owned())
        }
    }
}

impl Drop for Wimlib {
    fn drop(&mut self) {
        // SAFETY: the handle came from wimlib_create_decompressor and is
        // freed once, before the library is unloaded.
        unsafe { (self.free)(self.handle) }
    }
}

/// The median of `values` and a 95% distribution-free interval for it:
/// order statistics k and n + 1 − k, k the largest with
/// P(Binomial(n, ½) < k) ≤ 2.5% (none when n is too small).
fn median_interval(values: &mut [f64]) -> (f64, Option<(f64, f64)>) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = (values[(n - 1) / 2] + values[n / 2]) / 2.0;
    // ln P(B = i) from ln P(B = 0) = −n ln 2, step by step.
    let mut ln_p = -(n as f64) * std::f64::consts::LN_2;
    let (mut below, mut k) = (0.0, 0usize);
    while k < n {
        let p = ln_p.exp();
        if below + p > 0.025 {
            break;
        }
        below += p;
        ln_p += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
        k += 1;
    }
    let interval = (k > 0).then(|| (values[k - 1], values[n - k]));
    (median, interval)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: codec_interleaved LIBWIM xpress|lzx|lzms|lzms-read PACK \
                 [--passes N] [--slice-mib M] [--log FILE]";
    let [library, codec, pack_path, options @ ..] = args.as_slice() else {
        return Err(usage.to_owned());
    };
    let (codec, in_pieces) = common::codec(codec)?;
    let (mut passes, mut slice_mib, mut log) = (10usize, 1usize, None);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or(usage.to_owned())?;
        match option.as_str() {
            "--passes" => passes = value.parse().map_err(|_| "bad --passes".to_owned())?,
            "--slice-mib" => slice_mib = value.parse().map_err(|_| "bad --slice-mib".to_owned())?,
            "--log" => log = Some(value.clone()),
            _ => return Err(usage.to_owned()),
        }
    }
    let pack = std::fs::read(pack_path).map_err(|e| format!("{pack_path}: {e}"))?;
    let chunks = chunks(&pack)?;
    let max = chunks.iter().map(|&(size, _)| size).max().unwrap_or(0);
    if max == 0 || passes == 0 {
        return Err("nothing to decode".to_owned());
    }
    let mut mine = decompressor(codec, max).map_err(|e| e.to_string())?;
    let mut theirs = Wimlib::open(library, codec, max)?;
    let (mut a, mut b) = (vec![0u8; max], vec![0u8; max]);

    // Same output, chunk by chunk.
    for (index, &(size, data)) in chunks.iter().enumerate() {
        ours(mine.as_mut(), data, &mut a[..size], in_pieces)?;
        theirs.decompress(data, &mut b[..size])?;
        if a[..size] != b[..size] {
            return Err(format!("outputs differ at chunk {index}"));
        }
    }

    let mut slices = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, &(size, _)) in chunks.iter().enumerate() {
        bytes += size;
        if bytes >= slice_mib << 20 || index + 1 == chunks.len() {
            slices.push(start..index + 1);
            (start, bytes) = (index + 1, 0);
        }
    }
    let mut samples = Vec::new();
    let mut lines = String::new();
    let (mut ours_total, mut theirs_total, mut out_total) = (0u128, 0u128, 0usize);
    for pass in 0..passes {
        for (number, slice) in slices.iter().enumerate() {
            let part = &chunks[slice.clone()];
            let mut time_ours = |a: &mut [u8]| -> Result<u128, String> {
                let clock = Instant::now();
                for &(size, data) in part {
                    ours(mine.as_mut(), data, &mut a[..size], in_pieces)?;
                }
                Ok(clock.elapsed().as_nanos())
            };
            let first = time_ours(&mut a)?;
            let clock = Instant::now();
            for _ in 0..2 {
                for &(size, data) in part {
                    theirs.decompress(data, &mut b[..size])?;
                }
            }
            let theirs_ns = clock.elapsed().as_nanos();
            let ours_ns = first + time_ours(&mut a)?;
            ours_total += ours_ns;
            theirs_total += theirs_ns;
            out_total += 2 * part.iter().map(|&(size, _)| size).sum::<usize>();
            samples.push(theirs_ns as f64 / ours_ns.max(1) as f64);
            lines += &format!("{number} {pass} {ours_ns} {theirs_ns}\n");
        }
    }
    if let Some(path) = log {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        file.write_all(lines.as_bytes())
            .map_err(|e| format!("{path}: {e}"))?;
    }
    let n = samples.len();
    let (ratio, interval) = median_interval(&mut samples);
    let (low, high) = interval.map_or(("-".to_owned(), "-".to_owned()), |(l, h)| {
        (format!("{l:.4}"), format!("{h:.4}"))
    });
    let mbs = |ns: u128| out_total as f64 / (ns.max(1) as f64 / 1e9) / 1e6;
    println!(
        "samples={n} ours_mbs={:.1} wimlib_mbs={:.1} ratio={ratio:.4} low={low} high={high}",
        mbs(ours_total),
        mbs(theirs_total)
    );
    Ok(())
}
