//! OneGet's rules for choosing feed entries: name wildcards and version bounds.
//!
//! - Names match whole, ignoring case, with `*` and `?` wildcards; no name
//!   (or `*`) matches everything.
//! - Without `-AllVersions` only the highest matching version of each name
//!   (per source) is returned; with it, every match.
//! - `-MinimumVersion` and `-MaximumVersion` are inclusive; `-RequiredVersion`
//!   is an exact (numeric) match.
//! - `-AllVersions` with any other version parameter, `-RequiredVersion`
//!   with a bound, and a minimum above the maximum are usage errors, worded
//!   as OneGet words them.

use std::collections::HashMap;

use crate::config::SourceConfig;
use crate::error_chain;
use crate::feed::FeedEntry;
use crate::progress::Reporter;
use crate::source::{self, FeedClient, SourceError};
use crate::version::Version;
use crate::wildcard;

/// Why a combination of search parameters is refused (usage errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "You cannot use the parameter AllVersions with RequiredVersion, MinimumVersion or MaximumVersion in the same command."
    )]
    AllVersionsWithOtherVersions,
    #[error(
        "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command. Specify only one of these parameters in your command."
    )]
    RequiredVersionWithRange,
    #[error("The specified MinimumVersion '{minimum}' is greater than the specified MaximumVersion '{maximum}'.")]
    MinimumAboveMaximum { minimum: String, maximum: String },
}

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    names: Vec<String>,
    minimum: Option<Version>,
    maximum: Option<Version>,
    required: Option<Version>,
    all_versions: bool,
}

impl Query {
    /// Checks the combination of parameters as OneGet does, in its order.
    pub fn new(
        names: Vec<String>,
        minimum: Option<Version>,
        maximum: Option<Version>,
        required: Option<Version>,
        all_versions: bool,
    ) -> Result<Query, QueryError> {
        if all_versions && (required.is_some() || minimum.is_some() || maximum.is_some()) {
            return Err(QueryError::AllVersionsWithOtherVersions);
        }
        if required.is_some() && (minimum.is_some() || maximum.is_some()) {
            return Err(QueryError::RequiredVersionWithRange);
        }
        if let (Some(min), Some(max)) = (&minimum, &maximum) {
            if min > max {
                return Err(QueryError::MinimumAboveMaximum {
                    minimum: min.to_string(),
                    maximum: max.to_string(),
                });
            }
        }
        let names = names
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        Ok(Query {
            names,
            minimum,
            maximum,
            required,
            all_versions,
        })
    }

    /// The names asked for (empty: everything).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn version_fits(&self, v: &Version) -> bool {
        self.required.as_ref().is_none_or(|r| v == r)
            && self.minimum.as_ref().is_none_or(|m| v >= m)
            && self.maximum.as_ref().is_none_or(|m| v <= m)
    }

    /// Marks every name `entry_name` matches as found; false when it
    /// matches none. No names match everything.
    fn mark_names(&self, entry_name: &str, found: &mut [bool]) -> bool {
        if self.names.is_empty() {
            return true;
        }
        let mut any = false;
        for (name, found) in self.names.iter().zip(found.iter_mut()) {
            if wildcard::matches(name, entry_name) {
                *found = true;
                any = true;
            }
        }
        any
    }

    /// Chooses from `entries` (several sources' entries, in source order).
    /// Results are ordered by source, then name, then version (highest first).
    pub fn select<'a>(&self, entries: &'a [FeedEntry]) -> Selection<'a> {
        let mut matched_name = vec![false; self.names.len()];
        let mut source_rank: HashMap<&str, usize> = HashMap::new();
        let mut chosen: Vec<&'a FeedEntry> = Vec::new();
        // (source, lower-case name) → index in `chosen`, when keeping the highest only.
        let mut best: HashMap<(&'a str, String), usize> = HashMap::new();
        for entry in entries {
            // A name counts as found only through an entry in the version range.
            if !self.version_fits(&entry.version)
                || !self.mark_names(&entry.name, &mut matched_name)
            {
                continue;
            }
            let rank = source_rank.len();
            source_rank.entry(entry.source.as_str()).or_insert(rank);
            if self.all_versions {
                chosen.push(entry);
                continue;
            }
            let key = (entry.source.as_str(), entry.name.to_lowercase());
            match best.get(&key).and_then(|&i| chosen.get_mut(i)) {
                Some(current) => {
                    if entry.version > current.version {
                        *current = entry;
                    }
                }
                None => {
                    best.insert(key, chosen.len());
                    chosen.push(entry);
                }
            }
        }
        chosen.sort_by_cached_key(|e| {
            (
                source_rank
                    .get(e.source.as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                e.name.to_lowercase(),
                std::cmp::Reverse(e.version.clone()),
            )
        });
        let unmatched = self
            .names
            .iter()
            .zip(&matched_name)
            .filter(|(_, &m)| !m)
            .map(|(n, _)| n.clone())
            .collect();
        Selection {
            entries: chosen,
            unmatched,
        }
    }
}

/// What a query chose.
#[derive(Debug)]
pub struct Selection<'a> {
    pub entries: Vec<&'a FeedEntry>,
    /// Names (as given) that matched nothing.
    pub unmatched: Vec<String>,
}

/// OneGet's message when nothing matched `name`.
pub fn no_match_message(name: &str) -> String {
    format!(
        "No match was found for the specified search criteria and image name '{name}'. \
         Try Get-PackageSource to see all available registered package sources."
    )
}

/// OneGet's message when nothing at all was found and no name was given.
pub const NO_MATCH_ANY: &str = "No match was found for the specified search criteria. \
     Try Get-PackageSource to see all available registered package sources.";

/// What a search over sources found.
#[derive(Debug)]
pub struct FindResult {
    /// The chosen entries, each with its source.
    pub entries: Vec<FeedEntry>,
    /// Names without wildcards that matched nothing: each is an error.
    pub missing: Vec<String>,
    /// Wildcard names that matched nothing (OneGet only mentions them with -Verbose).
    pub missing_wildcards: Vec<String>,
    /// No name was given and nothing was found.
    pub nothing_found: bool,
    /// Sources that could not be read (name, why); already reported as warnings.
    pub failed_sources: Vec<(String, String)>,
    /// Sources refused because their feed's signature does not verify with
    /// the key pinned to them (see [`SourceError::is_unverified`]): errors
    /// the caller reports, not yet reported.
    pub unverified_sources: Vec<SourceError>,
    /// How many sources were refused for their signature (kept when the
    /// errors are taken out of `unverified_sources` to be reported).
    pub refused_sources: usize,
    /// How many sources were searched.
    pub sources: usize,
    /// Every image the readable sources offer (name, version), to say what
    /// exists when nothing matched.
    pub available: Vec<(String, Version)>,
}

impl FindResult {
    /// No source could be read: nothing was searched.
    pub fn no_source_readable(&self) -> bool {
        self.sources > 0 && self.failed_sources.len() + self.refused_sources == self.sources
    }

    /// The "No match was found" messages this result calls for, each with
    /// what exists: the versions of a name when a version was asked for,
    /// close names for a typo. When no source could be read, one message
    /// says so (with each source's error) instead.
    pub fn no_match_messages(&self) -> Vec<String> {
        if self.no_source_readable() {
            let mut errors: Vec<String> = self
                .failed_sources
                .iter()
                .map(|(name, why)| format!("'{name}': {why}"))
                .collect();
            if self.refused_sources > 0 {
                errors.push(format!(
                    "{} source(s) refused for their signature, as reported above",
                    self.refused_sources
                ));
            }
            return vec![format!(
                "no source could be read, so nothing was searched ({}). \
                 Check the locations with Get-PackageSource.",
                errors.join("; ")
            )];
        }
        let mut out: Vec<String> = self
            .missing
            .iter()
            .map(|n| format!("{}{}", no_match_message(n), self.what_exists(n)))
            .collect();
        if self.nothing_found {
            out.push(NO_MATCH_ANY.to_string());
        }
        out
    }

    /// ` Versions available: 1.0, 2.0.` or ` Did you mean: NanoServer?`, or nothing.
    fn what_exists(&self, name: &str) -> String {
        let mut versions: Vec<&Version> = self
            .available
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        if !versions.is_empty() {
            versions.sort_by(|a, b| b.cmp(a));
            versions.dedup();
            let shown: Vec<String> = versions.iter().take(20).map(|v| v.to_string()).collect();
            let more = if versions.len() > shown.len() {
                format!(
                    " (and {} more; Find-ContainerImage -AllVersions lists them)",
                    versions.len() - shown.len()
                )
            } else {
                String::new()
            };
            return format!(
                " Versions of '{name}' available: {}{more}.",
                shown.join(", ")
            );
        }
        let lower = name.to_lowercase();
        let mut close: Vec<(f64, &str)> = Vec::new();
        for (n, _) in &self.available {
            let score = strsim::jaro_winkler(&n.to_lowercase(), &lower);
            if score > 0.8 && !close.iter().any(|(_, c)| c.eq_ignore_ascii_case(n)) {
                close.push((score, n));
            }
        }
        close.sort_by(|a, b| b.0.total_cmp(&a.0));
        if close.is_empty() {
            return String::new();
        }
        let names: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
        format!(" Did you mean: {}?", names.join(", "))
    }
}

/// Keeps the first entry of each image (name ignoring case, and version);
/// each kept entry comes with the sources of the entries dropped for it.
pub fn once_per_image(entries: Vec<FeedEntry>) -> Vec<(FeedEntry, Vec<String>)> {
    let mut kept: Vec<(FeedEntry, Vec<String>)> = Vec::new();
    for entry in entries {
        match kept
            .iter_mut()
            .find(|(k, _)| k.name.eq_ignore_ascii_case(&entry.name) && k.version == entry.version)
        {
            Some((_, dropped)) => dropped.push(entry.source),
            None => kept.push((entry, Vec::new())),
        }
    }
    kept
}

/// Searches `sources` (read in parallel). A source that cannot be read is
/// a warning through `reporter`, a pinned source whose signature does not
/// verify is returned in [`FindResult::unverified_sources`]; the others
/// still answer.
pub fn find(
    sources: &[SourceConfig],
    query: &Query,
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> FindResult {
    ReadSources::read(sources, client, reporter).find(sources, query)
}

/// What became of one source that was read.
enum SourceState {
    Entries(Vec<FeedEntry>),
    /// Could not be read (the error as one line); warned about once.
    Failed(String),
    /// Refused for its signature; the error is handed to the first search
    /// that includes the source, so it is reported once.
    Unverified(Option<SourceError>),
}

/// Sources read once (in parallel), then searched by any number of
/// queries: a pipeline of many objects reads each feed one time.
pub struct ReadSources {
    read: Vec<(String, SourceState)>,
}

impl ReadSources {
    /// Reads each of `sources` once (the same name twice is read once). A
    /// source that cannot be read is a warning through `reporter`.
    pub fn read(sources: &[SourceConfig], client: &FeedClient, reporter: &dyn Reporter) -> Self {
        let mut distinct: Vec<SourceConfig> = Vec::new();
        for s in sources {
            if !distinct
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(&s.name))
            {
                distinct.push(s.clone());
            }
        }
        let results = source::load_all(&distinct, client, reporter);
        let read = distinct
            .into_iter()
            .zip(results)
            .map(|(src, result)| {
                let state = match result {
                    Ok(entries) => SourceState::Entries(entries),
                    Err(e) if e.is_unverified() => SourceState::Unverified(Some(e)),
                    Err(e) => {
                        let why = error_chain(&e);
                        reporter.warn(&format!(
                            "Unable to read package source '{}' ({}): {why}",
                            src.name, src.location
                        ));
                        SourceState::Failed(why)
                    }
                };
                (src.name, state)
            })
            .collect();
        ReadSources { read }
    }

    /// Searches those of the read sources that `sources` names.
    pub fn find(&mut self, sources: &[SourceConfig], query: &Query) -> FindResult {
        let mut all = Vec::new();
        let mut failed_sources = Vec::new();
        let mut unverified_sources = Vec::new();
        let mut refused_sources = 0;
        for src in sources {
            let Some((name, state)) = self
                .read
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&src.name))
            else {
                continue;
            };
            match state {
                SourceState::Entries(entries) => all.extend(entries.iter().cloned()),
                SourceState::Failed(why) => failed_sources.push((name.clone(), why.clone())),
                SourceState::Unverified(error) => {
                    refused_sources += 1;
                    unverified_sources.extend(error.take());
                }
            }
        }
        let selection = query.select(&all);
        let (missing_wildcards, missing): (Vec<String>, Vec<String>) = selection
            .unmatched
            .into_iter()
            .partition(|n| wildcard::has_wildcards(n));
        let nothing_found = query.names().is_empty() && selection.entries.is_empty();
        let entries = selection.entries.into_iter().cloned().collect();
        let available = all
            .iter()
            .map(|e| (e.name.clone(), e.version.clone()))
            .collect();
        FindResult {
            entries,
            missing,
            missing_wildcards,
            nothing_found,
            failed_sources,
            refused_sources,
            unverified_sources,
            sources: sources.len(),
            available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect(s)
    }

    fn opt(s: &str) -> Option<Version> {
        (!s.is_empty()).then(|| v(s))
    }

    fn entry(source: &str, name: &str, version: &str) -> FeedEntry {
        FeedEntry {
            name: name.into(),
            version: v(version),
            publisher: None,
            description: None,
            architecture: None,
            size: None,
            sha256: None,
            locations: Vec::new(),
            source: source.into(),
        }
    }

    fn feed() -> Vec<FeedEntry> {
        vec![
            entry("A", "NanoServer", "10.0.14300.1010"),
            entry("A", "NanoServer", "10.0.14300.999"),
            entry("A", "NanoServer", "10.0.14393.0"),
            entry("A", "WindowsServerCore", "10.0.14300.1000"),
            entry("A", "WindowsServerCore", "1.0"),
            entry("B", "nanoserver", "9.0"),
            entry("B", "Other", "2.0"),
        ]
    }

    /// (names, min, max, required, all, expected "source/name/version", unmatched)
    type Case<'a> = (
        &'a [&'a str],
        &'a str,
        &'a str,
        &'a str,
        bool,
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn selection_rules() {
        let cases: &[Case] = &[
            (
                &[],
                "",
                "",
                "",
                false,
                &[
                    "A/NanoServer/10.0.14393.0",
                    "A/WindowsServerCore/10.0.14300.1000",
                    "B/nanoserver/9.0",
                    "B/Other/2.0",
                ],
                &[],
            ),
            (
                &["nanoserver"],
                "",
                "",
                "",
                false,
                &["A/NanoServer/10.0.14393.0", "B/nanoserver/9.0"],
                &[],
            ),
            (
                &["*core"],
                "",
                "",
                "",
                true,
                &[
                    "A/WindowsServerCore/10.0.14300.1000",
                    "A/WindowsServerCore/1.0",
                ],
                &[],
            ),
            (
                &["Nano?erver"],
                "",
                "",
                "",
                true,
                &[
                    "A/NanoServer/10.0.14393.0",
                    "A/NanoServer/10.0.14300.1010",
                    "A/NanoServer/10.0.14300.999",
                    "B/nanoserver/9.0",
                ],
                &[],
            ),
            // Inclusive bounds, highest within them.
            (
                &["NanoServer"],
                "10.0.14300.999",
                "10.0.14300.1010",
                "",
                false,
                &["A/NanoServer/10.0.14300.1010"],
                &[],
            ),
            (
                &["NanoServer"],
                "10.0.14300.1010",
                "",
                "",
                false,
                &["A/NanoServer/10.0.14393.0"],
                &[],
            ),
            (
                &["NanoServer"],
                "",
                "10.0.14300.999",
                "",
                false,
                &["A/NanoServer/10.0.14300.999", "B/nanoserver/9.0"],
                &[],
            ),
            // Required: numeric equality, missing parts are 0.
            (
                &["WindowsServerCore"],
                "",
                "",
                "1",
                false,
                &["A/WindowsServerCore/1.0"],
                &[],
            ),
            (
                &["NanoServer"],
                "",
                "",
                "10.0.14300.1010",
                false,
                &["A/NanoServer/10.0.14300.1010"],
                &[],
            ),
            (
                &["NanoServer", "Missing", "Miss*"],
                "",
                "",
                "",
                false,
                &["A/NanoServer/10.0.14393.0", "B/nanoserver/9.0"],
                &["Missing", "Miss*"],
            ),
            (&["NanoServer"], "", "", "11", false, &[], &["NanoServer"]),
            (
                &["*"],
                "",
                "",
                "",
                false,
                &[
                    "A/NanoServer/10.0.14393.0",
                    "A/WindowsServerCore/10.0.14300.1000",
                    "B/nanoserver/9.0",
                    "B/Other/2.0",
                ],
                &[],
            ),
        ];
        let entries = feed();
        for (names, min, max, req, all, expected, unmatched) in cases {
            let q = Query::new(
                names.iter().map(|s| s.to_string()).collect(),
                opt(min),
                opt(max),
                opt(req),
                *all,
            )
            .expect("valid query");
            let s = q.select(&entries);
            let got: Vec<String> = s
                .entries
                .iter()
                .map(|e| format!("{}/{}/{}", e.source, e.name, e.version))
                .collect();
            assert_eq!(
                got, *expected,
                "names {names:?} min {min:?} max {max:?} req {req:?} all {all}"
            );
            assert_eq!(s.unmatched, *unmatched, "unmatched for {names:?}");
        }
    }

    #[test]
    fn usage_errors_with_onegets_wording() {
        let cases: &[(&str, &str, &str, bool, &str)] = &[
            ("", "", "1.0", true, "You cannot use the parameter AllVersions with RequiredVersion"),
            ("1.0", "", "", true, "You cannot use the parameter AllVersions with RequiredVersion, MinimumVersion or MaximumVersion in the same command."),
            ("", "2.0", "", true, "AllVersions"),
            ("1.0", "", "1.0", false, "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command."),
            ("", "2", "2", false, "RequiredVersion and either"),
            ("2.0", "1.0", "", false, "The specified MinimumVersion '2.0' is greater than the specified MaximumVersion '1.0'."),
        ];
        for (min, max, req, all, message) in cases {
            let err = Query::new(Vec::new(), opt(min), opt(max), opt(req), *all)
                .expect_err("must be refused");
            assert!(
                err.to_string().contains(message),
                "{err} should contain {message:?}"
            );
        }
        assert!(Query::new(Vec::new(), opt("1.0"), opt("1.0.0.0"), None, false).is_ok());
    }

    #[test]
    fn one_entry_per_image_from_the_first_source() {
        let kept = once_per_image(vec![
            entry("A", "Nano", "1.0"),
            entry("B", "nano", "1.0.0.0"),
            entry("B", "Nano", "2.0"),
            entry("C", "NANO", "1.0"),
        ]);
        let shown: Vec<(String, String, Vec<String>)> = kept
            .into_iter()
            .map(|(e, dropped)| (e.source, e.version.to_string(), dropped))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "A".to_string(),
                    "1.0".to_string(),
                    vec!["B".to_string(), "C".to_string()]
                ),
                ("B".to_string(), "2.0".to_string(), vec![]),
            ]
        );
    }
}
