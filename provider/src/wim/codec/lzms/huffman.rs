//! The adaptive Huffman codes of LZMS.
//!
//! Every code starts with all symbol frequencies at 1 and is rebuilt from the
//! frequencies of the symbols decoded so far after every `rebuild_interval`
//! symbols; after each rebuild the frequencies are halved (plus one). The
//! encoder and the decoder must build the very same code, so the
//! construction follows the format exactly:
//!
//! - symbols are ordered by (frequency, symbol value);
//! - the tree is built by repeatedly joining the two lightest nodes, a leaf
//!   winning a tie against an internal node;
//! - codeword lengths are taken per depth from the tree (limited to 15 bits)
//!   and handed out longest first in that symbol order;
//! - codewords are canonical.

use super::bits::BackwardBits;

/// The longest codeword LZMS allows.
pub(super) const MAX_CODEWORD_LEN: usize = 15;

/// Table entry flag: the entry points to a subtable for longer codewords.
const SUBTABLE: u32 = 0x8000;
/// Table entry: low bits hold the number of bits to consume (or, for a
/// subtable, how many more bits index it); bits 16.. the symbol (or the
/// subtable's start).
const LEN_MASK: u32 = 0xF;

/// An adaptive Huffman code of up to `MAX_SYMS` symbols, decoded through a
/// `TABLE_BITS`-bit first-level table plus subtables, in a table of
/// `TABLE_SIZE` entries.
///
/// The table is a fixed-size array and every index into it is reduced
/// modulo `TABLE_SIZE` (a mask, for a power of two), as is every symbol
/// counted modulo `MAX_SYMS`: the reductions never change a valid index,
/// and they let the decoder go without bounds checks.
pub(super) struct AdaptiveCode<
    const MAX_SYMS: usize,
    const TABLE_BITS: u32,
    const TABLE_SIZE: usize,
> {
    table: [u32; TABLE_SIZE],
    freqs: [u32; MAX_SYMS],
    until_rebuild: u32,
    num_syms: usize,
    rebuild_interval: u32,
    builder: Builder<MAX_SYMS>,
    /// The starting table (all frequencies 1) for `initial_syms` symbols,
    /// kept because consecutive chunks usually need the same one; its
    /// entries from `initial_len` on are unused.
    initial: Box<[u32]>,
    initial_len: usize,
    initial_syms: usize,
}

/// Scratch space for building a code; reused for every rebuild.
struct Builder<const MAX_SYMS: usize> {
    /// (frequency << 10) | symbol, sorted.
    sorted: [u32; MAX_SYMS],
    /// Leaf frequencies in sorted order, then the internal nodes'.
    leaf_freq: [u32; MAX_SYMS],
    node_freq: [u32; MAX_SYMS],
    /// The parent of each internal node, then its depth.
    node_parent: [u32; MAX_SYMS],
    lens: [u8; MAX_SYMS],
    /// Symbols in canonical order: by codeword length, then symbol value.
    by_code: [u16; MAX_SYMS],
}

const SYMBOL_BITS: u32 = 10;

impl<const MAX_SYMS: usize, const TABLE_BITS: u32, const TABLE_SIZE: usize>
    AdaptiveCode<MAX_SYMS, TABLE_BITS, TABLE_SIZE>
{
    /// Table entries: the first level, plus the most the subtables can take.
    /// A subtable indexed by k bits is only made for a complete subtree
    /// holding a codeword k bits longer than the first level, so it holds at
    /// least k + 1 codewords.
    const TABLE_LEN: usize = {
        let k = MAX_CODEWORD_LEN - TABLE_BITS as usize;
        let len = (1 << TABLE_BITS) + MAX_SYMS.div_ceil(k + 1) * (1 << k);
        assert!(
            len <= TABLE_SIZE,
            "TABLE_SIZE is too small for the subtables"
        );
        len
    };

    pub(super) fn new(rebuild_interval: u32) -> Self {
        assert!(MAX_SYMS <= 1 << SYMBOL_BITS && (TABLE_BITS as usize) < MAX_CODEWORD_LEN);
        let mut code = AdaptiveCode {
            num_syms: MAX_SYMS,
            rebuild_interval,
            until_rebuild: rebuild_interval,
            freqs: [1; MAX_SYMS],
            table: [0; TABLE_SIZE],
            initial: vec![0; Self::TABLE_LEN].into_boxed_slice(),
            initial_len: 0,
            initial_syms: 0,
            builder: Builder {
                sorted: [0; MAX_SYMS],
                leaf_freq: [0; MAX_SYMS],
                node_freq: [0; MAX_SYMS],
                node_parent: [0; MAX_SYMS],
                lens: [0; MAX_SYMS],
                by_code: [0; MAX_SYMS],
            },
        };
        code.reset(MAX_SYMS);
        code
    }

    /// Starts over for a new chunk with `num_syms` symbols (2..=MAX_SYMS).
    pub(super) fn reset(&mut self, num_syms: usize) {
        self.num_syms = num_syms.clamp(2, MAX_SYMS);
        self.freqs.fill(1);
        self.until_rebuild = self.rebuild_interval;
        let len = self.initial_len;
        if self.initial_syms == self.num_syms {
            self.table[..len].copy_from_slice(&self.initial[..len]);
        } else {
            let n = self.num_syms;
            self.builder.flat_lengths(n);
            let starts = self.builder.canonical_order(n);
            let len = fill_table(&self.builder, n, &starts, TABLE_BITS, &mut self.table);
            self.initial[..len].copy_from_slice(&self.table[..len]);
            self.initial_len = len;
            self.initial_syms = n;
        }
    }

    /// Decodes one symbol, refilling `bits` first when fewer than a
    /// codeword's 15 bits are left.
    #[inline(always)]
    pub(super) fn decode(&mut self, bits: &mut BackwardBits<'_>) -> usize {
        bits.ensure(MAX_CODEWORD_LEN as u32);
        let mut entry = self.table[bits.peek(TABLE_BITS) % TABLE_SIZE];
        if entry & SUBTABLE != 0 {
            bits.consume(TABLE_BITS);
            let sub_bits = entry & LEN_MASK;
            let at = (entry >> 16) as usize + bits.peek(sub_bits);
            entry = self.table[at % TABLE_SIZE];
        }
        bits.consume(entry & LEN_MASK);
        let symbol = (entry >> 16) as usize;
        self.count(symbol);
        symbol
    }

    #[inline(always)]
    fn count(&mut self, symbol: usize) {
        self.freqs[symbol % MAX_SYMS] += 1;
        self.until_rebuild -= 1;
        if self.until_rebuild == 0 {
            self.rebuild();
        }
    }

    #[cold]
    #[inline(never)]
    fn rebuild(&mut self) {
        self.build();
        for freq in &mut self.freqs[..self.num_syms] {
            *freq = (*freq >> 1) + 1;
        }
    }

    fn build(&mut self) {
        self.until_rebuild = self.rebuild_interval;
        let n = self.num_syms;
        self.builder.lengths(&self.freqs[..n]);
        let starts = self.builder.canonical_order(n);
        fill_table(&self.builder, n, &starts, TABLE_BITS, &mut self.table);
    }
}

impl<const MAX_SYMS: usize> Builder<MAX_SYMS> {
    /// Computes `lens[..freqs.len()]` from the frequencies (all nonzero,
    /// at least two symbols).
    fn lengths(&mut self, freqs: &[u32]) {
        let n = freqs.len();
        self.sort_symbols(freqs);
        let sorted = &self.sorted[..n];
        for (leaf, key) in self.leaf_freq.iter_mut().zip(sorted.iter()) {
            *leaf = key >> SYMBOL_BITS;
        }

        // Join the two lightest of (next leaf, next unjoined internal node)
        // until one node is left; a leaf wins ties. Both nodes of a join
        // are picked at once, with one three-way branch rather than two
        // hard-to-predict ones: with the queues' next two entries l0 <= l1
        // (leaves) and n0 <= n1 (internal nodes), a join takes two leaves
        // if l1 <= n0, two internal nodes if n1 < l0, and else one of each.
        // An exhausted queue reads as an infinite frequency; at least two
        // nodes are always left to join.
        let mut leaf = 0;
        let mut node = 0;
        for made in 0..n - 1 {
            let front = |freqs: &[u32; MAX_SYMS], i: usize, end: usize| {
                if i < end {
                    freqs[i % MAX_SYMS]
                } else {
                    u32::MAX
                }
            };
            let (l0, l1) = (
                front(&self.leaf_freq, leaf, n),
                front(&self.leaf_freq, leaf + 1, n),
            );
            let (n0, n1) = (
                front(&self.node_freq, node, made),
                front(&self.node_freq, node + 1, made),
            );
            let freq = if l1 <= n0 {
                leaf += 2;
                l0 + l1
            } else if n1 < l0 {
                self.node_parent[node % MAX_SYMS] = made as u32;
                self.node_parent[(node + 1) % MAX_SYMS] = made as u32;
                node += 2;
                n0 + n1
            } else {
                self.node_parent[node % MAX_SYMS] = made as u32;
                leaf += 1;
                node += 1;
                l0 + n0
            };
            self.node_freq[made % MAX_SYMS] = freq;
        }

        // Count codewords per length: start from a root with two leaf
        // children, then, parents before children, turn each internal node
        // from a leaf into a parent of two. A node too deep for the length
        // limit is placed at the deepest length that still has a codeword to
        // split, which keeps the code complete.
        let mut count = [0u32; MAX_CODEWORD_LEN + 1];
        count[1] = 2;
        let root = n - 2;
        self.node_parent[root] = 0; // now: depth

        // Nodes come mostly in runs of one depth (from the root down), and
        // a run's counts are added when it ends: one add per run rather
        // than a chain of dependent additions in memory per node.
        let mut run_depth = 0;
        let mut run = 0u32;
        for node in (0..root).rev() {
            let parent = self.node_parent[node] as usize;
            let depth = self.node_parent[parent] + 1;
            self.node_parent[node] = depth;
            let depth = depth as usize;
            if depth == run_depth {
                run += 1;
                continue;
            }
            count[run_depth] -= run;
            count[run_depth + 1] += 2 * run;
            if depth < MAX_CODEWORD_LEN {
                run_depth = depth;
                run = 1;
                continue;
            }
            // Too deep: placed alone, with the counts so far.
            let mut len = MAX_CODEWORD_LEN - 1;
            while len > 1 && count[len] == 0 {
                len -= 1;
            }
            count[len] -= 1;
            count[len + 1] += 2;
            (run_depth, run) = (0, 0);
        }
        count[run_depth] -= run;
        count[run_depth + 1] += 2 * run;

        // Longest codewords to the rarest symbols.
        let mut at = 0;
        for len in (1..=MAX_CODEWORD_LEN).rev() {
            let end = at + count[len] as usize;
            for key in sorted.get(at..end).unwrap_or_default() {
                self.lens[(key & ((1 << SYMBOL_BITS) - 1)) as usize] = len as u8;
            }
            at = end;
        }
    }

    /// Computes `lens[..n]` for `n` (>= 2) equally frequent symbols, as
    /// [`Self::lengths`] would: the code is as balanced as can be, with
    /// lengths `l` and `l - 1` where `2^(l-1) < n <= 2^l`, and the longer
    /// codewords go to the lowest symbols (first in (frequency, symbol) order).
    fn flat_lengths(&mut self, n: usize) {
        let long = n.next_power_of_two().trailing_zeros() as u8;
        let long_count = 2 * (n - n.next_power_of_two() / 2);
        for (symbol, len) in self.lens[..n].iter_mut().enumerate() {
            *len = if symbol < long_count { long } else { long - 1 };
        }
    }

    /// Fills `sorted[..n]` with (frequency << 10) | symbol in increasing
    /// order: a counting sort on small frequencies (the usual case), the few
    /// large ones sorted after it.
    fn sort_symbols(&mut self, freqs: &[u32]) {
        const BUCKETS: usize = 64;
        let bucket = |symbol: usize| (freqs[symbol] as usize).min(BUCKETS - 1);
        let large_from = stable_positions::<BUCKETS>(freqs.len(), bucket, |symbol, at| {
            let freq = freqs[symbol];
            // Frequencies stay far below 2^22 (they are halved regularly).
            let key = (freq.min((1 << (32 - SYMBOL_BITS)) - 1) << SYMBOL_BITS) | symbol as u32;
            if let Some(entry) = self.sorted.get_mut(at) {
                *entry = key;
            }
        });
        if let Some(large) = self.sorted.get_mut(large_from[BUCKETS - 1]..freqs.len()) {
            large.sort_unstable();
        }
    }

    /// Fills `by_code[..n]` with the symbols in canonical codeword order;
    /// returns where each codeword length's symbols start in it.
    fn canonical_order(&mut self, n: usize) -> [usize; MAX_CODEWORD_LEN + 1] {
        let lens = &self.lens[..n];
        let by_code = &mut self.by_code;
        stable_positions::<{ MAX_CODEWORD_LEN + 1 }>(
            n,
            |symbol| usize::from(lens[symbol]),
            |symbol, at| {
                if let Some(entry) = by_code.get_mut(at) {
                    *entry = symbol as u16;
                }
            },
        )
    }
}

/// A stable counting sort of the items `0..n` by `key` (below `K`): calls
/// `place(item, position)` for every item and returns where each key's
/// items start. The items are taken as four interleaved quarters, so that
/// the counters of a frequent key are four independent chains of
/// increments rather than one (which would wait on each store in turn).
#[inline(always)]
fn stable_positions<const K: usize>(
    n: usize,
    key: impl Fn(usize) -> usize,
    mut place: impl FnMut(usize, usize),
) -> [usize; K] {
    const LANES: usize = 4;
    let quarter = n.div_ceil(LANES);
    let mut count = [[0u32; K]; LANES];
    for i in 0..quarter {
        for (lane, counts) in count.iter_mut().enumerate() {
            let item = lane * quarter + i;
            if item < n {
                if let Some(c) = counts.get_mut(key(item)) {
                    *c += 1;
                }
            }
        }
    }
    // Keys in order; within a key, the quarters in order.
    let mut starts = [0usize; K];
    let mut next = [[0u32; K]; LANES];
    let mut at = 0u32;
    for (k, start) in starts.iter_mut().enumerate() {
        *start = at as usize;
        for lane in 0..LANES {
            next[lane][k] = at;
            at += count[lane][k];
        }
    }
    for i in 0..quarter {
        for (lane, nexts) in next.iter_mut().enumerate() {
            let item = lane * quarter + i;
            if item < n {
                if let Some(slot) = nexts.get_mut(key(item)) {
                    place(item, *slot as usize);
                    *slot += 1;
                }
            }
        }
    }
    starts
}

/// Gives each symbol `SPAN` entries of `entries`, in order: its
/// first-level entry for a codeword of `len` bits.
#[inline(always)]
fn fill_spans<const SPAN: usize>(entries: &mut [u32], symbols: &[u16], len: usize) {
    for (entries, &symbol) in entries.chunks_exact_mut(SPAN).zip(symbols) {
        entries.copy_from_slice(&[(u32::from(symbol) << 16) | len as u32; SPAN]);
    }
}

/// Builds the decode table of the canonical code given by `builder.lens` and
/// `builder.by_code` (each length's symbols from `starts`, as
/// [`Builder::canonical_order`] returns); returns how many entries of
/// `table` it uses.
fn fill_table<const MAX_SYMS: usize>(
    builder: &Builder<MAX_SYMS>,
    n: usize,
    starts: &[usize; MAX_CODEWORD_LEN + 1],
    table_bits: u32,
    table: &mut [u32],
) -> usize {
    let table_bits = table_bits as usize;
    let by_code = &builder.by_code[..n];

    // Codewords that fit the first level fill it from the start, in
    // canonical order, each over 2^(table_bits - len) entries.
    let mut at = 0;
    for len in 1..=table_bits {
        let span = 1 << (table_bits - len);
        // len < MAX_CODEWORD_LEN, so len + 1 is a length too.
        let symbols = by_code
            .get(starts[len]..starts[len + 1])
            .unwrap_or_default();
        let count = symbols.len();
        let entries = table.get_mut(at..at + count * span).unwrap_or_default();
        // A loop for each of the usual spans, so that each writes its
        // entries with one store per codeword.
        match span {
            1 => fill_spans::<1>(entries, symbols, len),
            2 => fill_spans::<2>(entries, symbols, len),
            4 => fill_spans::<4>(entries, symbols, len),
            8 => fill_spans::<8>(entries, symbols, len),
            _ => {
                for (entries, &symbol) in entries.chunks_exact_mut(span).zip(symbols) {
                    entries.fill((u32::from(symbol) << 16) | len as u32);
                }
            }
        }
        at += count * span;
    }
    // The next codeword, left-aligned to `table_bits` bits, and its symbol.
    let mut code = at;
    let mut prev_len = table_bits;
    let mut i = starts[table_bits + 1];

    // Longer codewords: one subtable per first-level prefix, big enough for
    // the longest codeword under that prefix. In canonical order the
    // codewords sharing a prefix are adjacent, and the last is the longest.
    let mut next_free = 1 << table_bits;
    while i < by_code.len() {
        let first_len = builder.lens[by_code[i] as usize] as usize;
        code <<= first_len - prev_len;
        prev_len = first_len;
        let prefix = code >> (first_len - table_bits);
        // Find the group and its longest codeword.
        let mut end = i;
        let mut group_code = code;
        let mut group_len = first_len;
        let mut max_len = first_len;
        while let Some(&symbol) = by_code.get(end) {
            let len = builder.lens[symbol as usize] as usize;
            group_code <<= len - group_len;
            group_len = len;
            if group_code >> (len - table_bits) != prefix {
                break;
            }
            max_len = len;
            group_code += 1;
            end += 1;
        }
        let sub_bits = max_len - table_bits;
        let start = next_free;
        next_free += 1 << sub_bits;
        if let Some(entry) = table.get_mut(prefix) {
            *entry = ((start as u32) << 16) | SUBTABLE | sub_bits as u32;
        }
        for &symbol in &by_code[i..end] {
            let len = builder.lens[symbol as usize] as usize;
            code <<= len - prev_len;
            prev_len = len;
            let low = code & ((1 << (len - table_bits)) - 1);
            let span = 1 << (max_len - len);
            let first = start + (low << (max_len - len));
            if let Some(entries) = table.get_mut(first..first + span) {
                entries.fill((u32::from(symbol) << 16) | (len - table_bits) as u32);
            }
            code += 1;
        }
        i = end;
    }
    next_free
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `symbols` with `code`'s current codewords as a backward stream
    /// (units from the end, high bit first).
    fn encode<const M: usize, const T: u32, const S: usize>(
        code: &AdaptiveCode<M, T, S>,
        symbols: &[usize],
    ) -> Vec<u8> {
        // Recover each symbol's codeword from the canonical order.
        let b = &code.builder;
        let mut codewords = vec![(0u32, 0u32); code.num_syms];
        let mut next = 0u32;
        let mut prev_len = 0;
        for &symbol in &b.by_code[..code.num_syms] {
            let len = u32::from(b.lens[symbol as usize]);
            next <<= len - prev_len;
            prev_len = len;
            codewords[symbol as usize] = (next, len);
            next += 1;
        }
        let mut bitvec = Vec::new();
        for &s in symbols {
            let (word, len) = codewords[s];
            for bit in (0..len).rev() {
                bitvec.push((word >> bit) & 1);
            }
        }
        while bitvec.len() % 16 != 0 {
            bitvec.push(0);
        }
        let mut units: Vec<u16> = bitvec
            .chunks(16)
            .map(|c| c.iter().fold(0u16, |acc, &b| (acc << 1) | b as u16))
            .collect();
        units.reverse();
        units.iter().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn kraft_sum<const M: usize>(b: &Builder<M>, n: usize) -> u64 {
        b.lens[..n]
            .iter()
            .map(|&l| 1u64 << (MAX_CODEWORD_LEN - l as usize))
            .sum()
    }

    #[test]
    fn equal_frequencies_give_a_balanced_code() {
        let code = AdaptiveCode::<256, 10, 4096>::new(1024);
        assert!(code.builder.lens.iter().all(|&l| l == 8));
        let code = AdaptiveCode::<54, 9, 2048>::new(512);
        // 54 symbols: 10 of length 5 then 44 of length 6, longest to the lowest symbols.
        let lens = &code.builder.lens;
        assert_eq!(lens.iter().filter(|&&l| l == 6).count(), 44);
        assert!(lens[..44].iter().all(|&l| l == 6) && lens[44..].iter().all(|&l| l == 5));
    }

    #[test]
    fn the_flat_code_is_the_built_one() {
        let mut b = AdaptiveCode::<799, 11, 8192>::new(1024).builder;
        for n in 2..=799 {
            b.lengths(&vec![1; n]);
            let built = b.lens[..n].to_vec();
            b.lens.fill(0);
            b.flat_lengths(n);
            assert_eq!(b.lens[..n], built[..], "{n} symbols");
        }
    }

    /// The code lengths as the format defines them, computed plainly: a
    /// full sort, two queues, one node at a time.
    fn plain_lengths(freqs: &[u32]) -> Vec<u8> {
        let n = freqs.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&s| (freqs[s], s));
        let leaves: Vec<u32> = order.iter().map(|&s| freqs[s]).collect();
        let (mut nodes, mut parent) = (Vec::new(), vec![0usize; n]);
        let (mut leaf, mut node) = (0, 0);
        for made in 0..n - 1 {
            let mut freq = 0;
            for _ in 0..2 {
                if leaf < n && (node == made || leaves[leaf] <= nodes[node]) {
                    freq += leaves[leaf];
                    leaf += 1;
                } else {
                    freq += nodes[node];
                    parent[node] = made;
                    node += 1;
                }
            }
            nodes.push(freq);
        }
        let mut count = [0u32; MAX_CODEWORD_LEN + 1];
        count[1] = 2;
        let mut depth = vec![0usize; n - 1];
        for node in (0..n - 2).rev() {
            depth[node] = depth[parent[node]] + 1;
            let mut len = depth[node];
            if len >= MAX_CODEWORD_LEN {
                len = MAX_CODEWORD_LEN - 1;
                while len > 1 && count[len] == 0 {
                    len -= 1;
                }
            }
            count[len] -= 1;
            count[len + 1] += 2;
        }
        let mut lens = vec![0u8; n];
        let mut symbols = order.iter();
        for len in (1..=MAX_CODEWORD_LEN).rev() {
            for &s in symbols.by_ref().take(count[len] as usize) {
                lens[s] = len as u8;
            }
        }
        lens
    }

    #[test]
    fn lengths_match_a_plain_construction() {
        let mut b = AdaptiveCode::<799, 11, 8192>::new(1024).builder;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..3000 {
            let n = 2 + (next() % 798) as usize;
            // Flat, skewed, runs of equal values, and very deep trees.
            let freqs: Vec<u32> = match round % 4 {
                0 => (0..n).map(|_| 1 + (next() % 4) as u32).collect(),
                1 => (0..n)
                    .map(|_| 1 + ((next() % 3000) as u32 >> (next() % 12)))
                    .collect(),
                2 => (0..n).map(|i| 1 + (i as u32 / 7) % 5).collect(),
                _ => (0..n)
                    .map(|i| if i < 40 { 1u32 << (i / 2).min(20) } else { 1 })
                    .collect(),
            };
            b.lengths(&freqs);
            assert_eq!(
                b.lens[..n],
                plain_lengths(&freqs)[..],
                "round {round}, {n} symbols"
            );
        }
    }

    #[test]
    fn codes_are_complete_and_limited() {
        let mut b = AdaptiveCode::<799, 11, 8192>::new(1024).builder;
        // Fibonacci-like frequencies force a very deep tree.
        let mut freqs = vec![1u32; 799];
        let (mut x, mut y) = (1u32, 1u32);
        for f in freqs.iter_mut().take(30) {
            *f = x;
            (x, y) = (y, x.saturating_add(y).min(1 << 21));
        }
        b.lengths(&freqs);
        assert!(b.lens.iter().all(|&l| (1..=15).contains(&l)));
        assert_eq!(kraft_sum(&b, 799), 1 << MAX_CODEWORD_LEN);
    }

    #[test]
    fn decoding_follows_the_rebuilds() {
        let mut decoder = AdaptiveCode::<799, 11, 8192>::new(1024);
        decoder.reset(300);
        let mut mirror = AdaptiveCode::<799, 11, 8192>::new(1024);
        mirror.reset(300);
        // Skewed symbols, enough to rebuild a few times and need subtables.
        let symbols: Vec<usize> = (0..5000usize)
            .map(|i| ((i * i) % 7 + (i % 293) * usize::from(i % 11 == 0)) % 300)
            .collect();
        for (round, batch) in symbols.chunks(1024).enumerate() {
            let stream = encode(&mirror, batch);
            let mut bits = BackwardBits::new(&stream);
            for (i, &expected) in batch.iter().enumerate() {
                bits.refill();
                assert_eq!(
                    decoder.decode(&mut bits),
                    expected,
                    "round {round}, symbol {i}"
                );
            }
            for &s in batch {
                mirror.count(s);
            }
        }
    }
}
