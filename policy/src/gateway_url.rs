//! Which gateway URLs the policy will dial, and so send the token to.
//!
//! READY's `resume_gateway_url` comes from the network. Before a session is
//! kept for resuming, its URL must have the same scheme as the base URL
//! (`wss` never downgrades to `ws`), no user info, and a host inside an
//! allowed domain: by default the base URL's own domain (its last two
//! labels, e.g. `discord.gg` for `gateway.discord.gg`; the exact host for an
//! IP address or a single-label name such as `localhost`). Anything else is
//! refused; the policy reports it with
//! [`Note::ResumeUrlRefused`](crate::Note::ResumeUrlRefused) and
//! resumes against the base URL instead.

use core::fmt;

use serde::{Deserialize, Serialize};

/// The longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2_048;

/// The parts of a `ws://` or `wss://` URL the checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayUrl {
    /// `true` for `wss`.
    pub secure: bool,
    /// The host, lower-cased (an IPv6 literal keeps its brackets).
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
}

/// Why a URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`].
    TooLong,
    /// Not `ws://` or `wss://`.
    Scheme,
    /// No host, a malformed host or port, or user info (`user@host`).
    Authority,
    /// A different scheme from the base URL's.
    SchemeMismatch,
    /// A host outside the allowed domains.
    HostNotAllowed,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "the URL is too long",
            Self::Scheme => "the URL is not ws:// or wss://",
            Self::Authority => "the URL's host or port is malformed, or it carries user info",
            Self::SchemeMismatch => "the URL's scheme differs from the base URL's",
            Self::HostNotAllowed => "the URL's host is outside the allowed domains",
        })
    }
}

impl std::error::Error for UrlError {}

impl GatewayUrl {
    /// Parses the scheme and authority of a `ws://` or `wss://` URL.
    ///
    /// # Errors
    ///
    /// [`UrlError::TooLong`], [`UrlError::Scheme`] or [`UrlError::Authority`].
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let parts = Parts::parse(url)?;
        Ok(Self {
            secure: parts.secure,
            host: parts.host.to_ascii_lowercase(),
            port: parts.port,
        })
    }

    /// Checks a resume URL against this base URL and the allowed domains
    /// (this URL's own domain when `allowed` is empty): the same check as
    /// [`check_resume_url`], for a base URL parsed once. It allocates
    /// nothing.
    ///
    /// # Errors
    ///
    /// Why the URL must not be dialled.
    pub fn check_resume(&self, resume: &str, allowed: &[String]) -> Result<(), UrlError> {
        Parts::parse(resume)?.check_against(self.secure, &self.host, allowed)
    }

    /// Whether the host is an IP address literal.
    #[must_use]
    pub fn is_ip(&self) -> bool {
        host_is_ip(&self.host)
    }

    /// The domain a resume URL must fall in when none is configured.
    #[must_use]
    pub fn default_domain(&self) -> &str {
        default_domain(&self.host)
    }

    /// Whether the host is `domain` or a subdomain of it.
    #[must_use]
    pub fn is_in_domain(&self, domain: &str) -> bool {
        host_in_domain(&self.host, domain)
    }
}

/// A URL's scheme and authority as written (the host not lower-cased):
/// what the checks need, without allocating.
struct Parts<'a> {
    /// `true` for `wss`.
    secure: bool,
    /// The host as written (an IPv6 literal keeps its brackets).
    host: &'a str,
    /// The port, if given.
    port: Option<u16>,
}

impl<'a> Parts<'a> {
    /// Parses the scheme and authority of a `ws://` or `wss://` URL.
    ///
    /// The base URL is parsed whenever a policy is built and again on
    /// every READY, with the resume URL, so this is written as a few passes
    /// of table look-ups folded together, without a comparison per byte:
    /// the scheme is one word compare, the forbidden bytes one OR over the
    /// URL, the host's checks one pass over the host.
    fn parse(url: &'a str) -> Result<Self, UrlError> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let (secure, rest) = match scheme(url.as_bytes()) {
            // The scheme is ASCII, so its end is a char boundary.
            Some((secure, len)) => (secure, &url[len..]),
            None => return Err(UrlError::Scheme),
        };
        // Byte scan first (every URL a gateway sends is ASCII); the char
        // scan only for the rest. For ASCII the two agree: the one
        // whitespace `is_ascii_whitespace` leaves out (U+000B) is a control.
        // Over what follows the scheme: the scheme's own bytes are neither
        // forbidden nor outside ASCII, but they hold the `:` and `/`
        // searched for below.
        let seen = rest.bytes().fold(0, |seen, b| seen | CLASS[usize::from(b)]);
        if seen & FORBIDDEN_BYTE != 0
            || (seen & NON_ASCII_BYTE != 0
                && url.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(UrlError::Authority);
        }
        // Up to the first `/`, `?` or `#` (ASCII, so a char boundary),
        // searched for only when there is one: a search compares every byte.
        let authority = if seen & AUTHORITY_END_BYTE == 0 {
            rest
        } else {
            rest.bytes()
                .position(|b| AUTHORITY_END[usize::from(b)])
                .map_or(rest, |end| &rest[..end])
        };
        let seen = authority
            .bytes()
            .fold(0, |seen, b| seen | CLASS[usize::from(b)]);
        if seen & USER_INFO_BYTE != 0 {
            return Err(UrlError::Authority);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').ok_or(UrlError::Authority)?;
            if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                return Err(UrlError::Authority);
            }
            // `[`, the address, `]`: all ASCII, so a char boundary.
            (&authority[..inside.len() + 2], after)
        } else {
            // Up to the first `:` (ASCII, so a char boundary), searched
            // for only when there is one.
            let end = if seen & COLON_BYTE == 0 {
                authority.len()
            } else {
                authority
                    .bytes()
                    .position(|b| COLON[usize::from(b)])
                    .unwrap_or(authority.len())
            };
            let host = &authority[..end];
            if !valid_host_name(host.as_bytes()) {
                return Err(UrlError::Authority);
            }
            (host, &authority[end..])
        };
        let port = match port {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                    .and_then(|d| d.parse::<u16>().ok())
                    .ok_or(UrlError::Authority)?,
            ),
        };
        Ok(Self { secure, host, port })
    }

    /// Checks these parts, a resume URL's, against a base URL given by its
    /// scheme and its host (in any case: the domain checks ignore ASCII
    /// case) and the allowed domains (the base URL's own domain when
    /// `allowed` is empty).
    fn check_against(
        &self,
        base_secure: bool,
        base_host: &str,
        allowed: &[String],
    ) -> Result<(), UrlError> {
        if self.secure != base_secure {
            return Err(UrlError::SchemeMismatch);
        }
        let ok = if allowed.is_empty() {
            host_in_domain(self.host, default_domain(base_host))
        } else {
            allowed.iter().any(|d| host_in_domain(self.host, d))
        };
        if ok {
            Ok(())
        } else {
            Err(UrlError::HostNotAllowed)
        }
    }
}

/// The domain a resume URL must fall in when none is configured, for a
/// base URL with this host: its last two labels, or the whole host for an
/// IP address or a name of one or two labels.
fn default_domain(host: &str) -> &str {
    if host_is_ip(host) {
        return host;
    }
    // The second dot from the end (ASCII, so a char boundary).
    let bytes = host.as_bytes();
    let second = bytes
        .iter()
        .rposition(|&b| DOT[usize::from(b)])
        .and_then(|last| bytes[..last].iter().rposition(|&b| DOT[usize::from(b)]));
    match second {
        Some(second) => &host[second + 1..],
        None => host,
    }
}

/// Whether `host` is an IP address literal.
fn host_is_ip(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether `host` is `domain` or a subdomain of it (ASCII case ignored).
fn host_in_domain(host: &str, domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    if domain.is_empty() {
        return false;
    }
    // Bytes: a tail that starts inside a character cannot equal a `str`.
    let (h, d) = (host.as_bytes(), domain.as_bytes());
    same_ignoring_ascii_case(h, d)
        || (h.len() > d.len()
            && same_ignoring_ascii_case(&h[h.len() - d.len()..], d)
            && h[h.len() - d.len() - 1] == b'.'
            && !host_is_ip(host))
}

/// `a.eq_ignore_ascii_case(b)`, with one comparison in all rather than a
/// few a byte: the differences of the lower-cased bytes are OR-ed together.
fn same_ignoring_ascii_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).fold(0, |diff, (&x, &y)| {
            diff | (LOWER[usize::from(x)] ^ LOWER[usize::from(y)])
        }) == 0
}

/// `to_ascii_lowercase` of every byte.
static LOWER: [u8; 256] = {
    let mut lower = [0; 256];
    let mut i = 0;
    while i < 256 {
        lower[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    lower
};

/// `.`, as a table: the searches for dots have no comparison per byte.
static DOT: [bool; 256] = {
    let mut dot = [false; 256];
    dot[b'.' as usize] = true;
    dot
};

/// The bytes that end a URL's authority: `/`, `?`, `#`.
static AUTHORITY_END: [bool; 256] = byte_tables().2;

/// The bytes never allowed in a URL, those allowed in a host name and
/// [`AUTHORITY_END`], built at compile time.
const fn byte_tables() -> ([bool; 256], [bool; 256], [bool; 256]) {
    let mut forbidden = [false; 256];
    let mut host = [false; 256];
    let mut end = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        forbidden[i] = b.is_ascii_whitespace() || b.is_ascii_control();
        host[i] = b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        end[i] = b == b'/' || b == b'?' || b == b'#';
        i += 1;
    }
    (forbidden, host, end)
}

/// The scheme `url` starts with, ASCII case ignored: `wss://` (`true`) or
/// `ws://` (`false`), with its length.
fn scheme(url: &[u8]) -> Option<(bool, usize)> {
    // The scheme's bytes as one little-endian word, letters lower-cased by
    // setting bit 5 (which turns `W` and `S` into `w` and `s` and no other
    // byte into either): one comparison instead of two a byte.
    let word = |len: usize, letters: u64| {
        let mut bytes = [0; 8];
        bytes[..len].copy_from_slice(url.get(..len)?);
        Some(u64::from_le_bytes(bytes) | letters)
    };
    const WSS: u64 = u64::from_le_bytes(*b"wss://\0\0");
    const WS: u64 = u64::from_le_bytes(*b"ws://\0\0\0");
    if word(6, 0x20_20_20) == Some(WSS) {
        Some((true, 6))
    } else if word(5, 0x20_20) == Some(WS) {
        Some((false, 5))
    } else {
        None
    }
}

/// Whether `host` is a host name the checks accept: not empty, only
/// letters, digits, `.` and `-`, no leading or trailing dot and no empty label. One pass
/// over the host with no comparison per byte.
fn valid_host_name(host: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (host.first(), host.last()) else {
        return false;
    };
    // Bits only, no branch or comparison per byte: `pairs` gathers the
    // classes two neighbours share, so its dot bit is set by an empty label.
    let mut seen = 0;
    let mut pairs = 0;
    let mut previous = 0;
    for &b in host {
        let class = CLASS[usize::from(b)];
        seen |= class;
        pairs |= previous & class;
        previous = class;
    }
    let edge_dot = (CLASS[usize::from(first)] | CLASS[usize::from(last)]) & DOT_BYTE;
    (seen & NOT_HOST_BYTE) | (pairs & DOT_BYTE) | edge_dot == 0
}

/// [`CLASS`] bit: the byte is never allowed in a URL.
const FORBIDDEN_BYTE: u8 = 1;
/// [`CLASS`] bit: the byte is not ASCII.
const NON_ASCII_BYTE: u8 = 2;
/// [`CLASS`] bit: `@` or `\\`, which would make what precedes it user info.
const USER_INFO_BYTE: u8 = 4;
/// [`CLASS`] bit: the byte is not allowed in a host name.
const NOT_HOST_BYTE: u8 = 8;
/// [`CLASS`] bit: `.`.
const DOT_BYTE: u8 = 16;
/// [`CLASS`] bit: `/`, `?` or `#` ([`AUTHORITY_END`]).
const AUTHORITY_END_BYTE: u8 = 32;
/// [`CLASS`] bit: `:`.
const COLON_BYTE: u8 = 64;

/// What the checks need to know of each byte, as the bits above: OR-ed
/// over a URL, they tell in one pass whether any byte is of a kind.
static CLASS: [u8; 256] = byte_classes();

/// `:`, as a table: the search for the port has no comparison per byte.
static COLON: [bool; 256] = {
    let mut colon = [false; 256];
    colon[b':' as usize] = true;
    colon
};

/// [`CLASS`], built at compile time from the tables above.
const fn byte_classes() -> [u8; 256] {
    let (forbidden, host, _) = byte_tables();
    let mut class = [0; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if forbidden[i] {
            class[i] |= FORBIDDEN_BYTE;
        }
        if !b.is_ascii() {
            class[i] |= NON_ASCII_BYTE;
        }
        if b == b'@' || b == b'\\' {
            class[i] |= USER_INFO_BYTE;
        }
        if !host[i] {
            class[i] |= NOT_HOST_BYTE;
        }
        if b == b'.' {
            class[i] |= DOT_BYTE;
        }
        if b == b'/' || b == b'?' || b == b'#' {
            class[i] |= AUTHORITY_END_BYTE;
        }
        if b == b':' {
            class[i] |= COLON_BYTE;
        }
        i += 1;
    }
    class
}

/// Checks a resume URL against the base URL and the allowed domains (the
/// base URL's own domain when `allowed` is empty).
///
/// # Errors
///
/// Why the URL must not be dialled.
///
/// It allocates nothing: the base URL is parsed in place, as the resume URL
/// is (the policy checks each READY's resume URL with it).
pub fn check_resume_url(resume: &str, base: &str, allowed: &[String]) -> Result<(), UrlError> {
    let resume = Parts::parse(resume)?;
    let base = Parts::parse(base)?;
    resume.check_against(base.secure, base.host, allowed)
}

/// Whether `url` is a well-formed `ws://` or `wss://` URL, as
/// [`GatewayUrl::parse`] judges it, without allocating its parts.
pub(crate) fn is_well_formed(url: &str) -> bool {
    Parts::parse(url).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser as first written (string searches, a comparison per
    /// byte): what [`Parts::parse`] must agree with on every input.
    fn reference_parse(url: &str) -> Result<(bool, &str, Option<u16>), UrlError> {
        fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
            let head = s.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| &s[prefix.len()..])
        }
        if url.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        if url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(UrlError::Authority);
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        if authority.contains('@') || authority.contains('\\') {
            return Err(UrlError::Authority);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').ok_or(UrlError::Authority)?;
            if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                return Err(UrlError::Authority);
            }
            (&authority[..inside.len() + 2], after)
        } else {
            let end = authority.find(':').unwrap_or(authority.len());
            let host = &authority[..end];
            let valid = !host.is_empty()
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !host.contains("..")
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                return Err(UrlError::Authority);
            }
            (host, &authority[end..])
        };
        let port = match port {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                    .and_then(|d| d.parse::<u16>().ok())
                    .ok_or(UrlError::Authority)?,
            ),
        };
        Ok((secure, host, port))
    }

    #[test]
    fn the_parser_agrees_with_the_reference_on_every_kind_of_url() {
        let pieces = [
            "",
            "w",
            "W",
            "s",
            "S",
            "ws",
            "wss",
            "WsS",
            "ws:",
            ":",
            "/",
            "//",
            "://",
            "wss://",
            "ws://",
            "WS://",
            "wSs://",
            "x",
            "a",
            "-",
            ".",
            "..",
            "a.b",
            "gateway.discord.gg",
            "@",
            "\\",
            "[",
            "]",
            "[::1]",
            ":443",
            ":99999",
            ":",
            "?",
            "#",
            "é",
            "\u{0b}",
            "\u{a0}",
            " ",
            "\t",
            "\u{7f}",
            "\u{2028}",
            "1",
            "127.0.0.1",
            "x@y",
            "a..b",
            ".a",
            "a.",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let url = format!("{a}{b}{c}");
                    let ours = Parts::parse(&url).map(|p| (p.secure, p.host, p.port));
                    assert_eq!(ours, reference_parse(&url), "{url:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000);
        let long = format!("wss://{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            Parts::parse(&long).map(|p| p.host).err(),
            reference_parse(&long).err()
        );
    }

    const BASE: &str = "wss://gateway.discord.gg";

    #[test]
    fn discord_resume_urls_are_allowed() {
        for url in [
            "wss://gateway-us-east1-b.discord.gg",
            "wss://gateway-us-east1-b.discord.gg/?v=10&encoding=json",
            "WSS://Gateway.Discord.GG:443",
            "wss://discord.gg",
        ] {
            assert_eq!(check_resume_url(url, BASE, &[]), Ok(()), "{url}");
        }
    }

    #[test]
    fn anything_that_could_leak_the_token_is_refused() {
        for (url, why) in [
            (
                "ws://gateway-us-east1-b.discord.gg",
                UrlError::SchemeMismatch,
            ),
            ("wss://evil.example", UrlError::HostNotAllowed),
            ("wss://discord.gg.evil.example", UrlError::HostNotAllowed),
            ("wss://notdiscord.gg", UrlError::HostNotAllowed),
            ("wss://gateway.discord.gg@evil.example", UrlError::Authority),
            (
                "wss://evil.example\\@gateway.discord.gg",
                UrlError::Authority,
            ),
            ("wss://", UrlError::Authority),
            ("wss://a..discord.gg", UrlError::Authority),
            ("wss://gateway.discord.gg:99999", UrlError::Authority),
            ("wss://gateway.discord.gg :443", UrlError::Authority),
            ("https://gateway.discord.gg", UrlError::Scheme),
        ] {
            assert_eq!(check_resume_url(url, BASE, &[]), Err(why), "{url}");
        }
        let long = format!("wss://{}.discord.gg", "a".repeat(MAX_URL_LEN));
        assert_eq!(check_resume_url(&long, BASE, &[]), Err(UrlError::TooLong));
    }

    #[test]
    fn loopback_and_configured_domains() {
        let base = "ws://127.0.0.1:9000";
        assert_eq!(check_resume_url("ws://127.0.0.1:9001/", base, &[]), Ok(()));
        assert_eq!(
            check_resume_url("ws://127.0.0.2:9001/", base, &[]),
            Err(UrlError::HostNotAllowed)
        );
        assert_eq!(
            check_resume_url("ws://localhost:1/", "ws://localhost:2", &[]),
            Ok(())
        );
        let allowed = ["example.net".to_owned()];
        assert_eq!(
            check_resume_url("wss://r.example.net", BASE, &allowed),
            Ok(())
        );
        assert_eq!(
            check_resume_url("wss://gateway.discord.gg", BASE, &allowed),
            Err(UrlError::HostNotAllowed)
        );
    }

    #[test]
    fn a_base_parsed_once_checks_as_the_strings_do() {
        for (base, allowed) in [
            (BASE, vec![]),
            ("ws://127.0.0.1:9000", vec![]),
            ("ws://localhost:2", vec![]),
            ("wss://Gateway.Discord.GG", vec!["example.net".to_owned()]),
            // Its own domain, from a host as written (not lower-cased).
            ("wss://Gateway.Discord.GG", vec![]),
            ("ws://LocalHost:2", vec![]),
            ("ws://[::1]:80", vec![]),
        ] {
            let parsed = GatewayUrl::parse(base).unwrap();
            for url in [
                "wss://gateway-us-east1-b.discord.gg/?v=10",
                "WSS://Gateway.Discord.GG:443",
                "ws://gateway.discord.gg",
                "wss://evil.example",
                "wss://R.Example.NET.",
                "wss://r.example.net",
                "ws://127.0.0.1:9001/",
                "ws://127.0.0.2",
                "ws://LOCALHOST:1",
                "ws://[::1]:81",
                "ws://[::2]",
                "wss://a..discord.gg",
                "wss://é.gg",
                "https://gateway.discord.gg",
            ] {
                assert_eq!(
                    parsed.check_resume(url, &allowed),
                    check_resume_url(url, base, &allowed),
                    "{url} against {base}"
                );
            }
        }
    }

    #[test]
    fn domain_checks_agree_with_the_string_searches() {
        fn reference_in_domain(host: &str, domain: &str) -> bool {
            let domain = domain.trim_end_matches('.');
            !domain.is_empty()
                && (host.eq_ignore_ascii_case(domain)
                    || (host.len() > domain.len()
                        && host
                            .get(host.len() - domain.len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                        && !host_is_ip(host)))
        }
        fn reference_default_domain(host: &str) -> &str {
            if host_is_ip(host) {
                return host;
            }
            let mut dots = host.rmatch_indices('.');
            match (dots.next(), dots.next()) {
                (Some(_), Some((second, _))) => &host[second + 1..],
                _ => host,
            }
        }
        let labels = [
            "", ".", "a", "A", "gg", "GG", "discord", "é", "1", "[::1]", "x-y",
        ];
        let mut names = Vec::new();
        for a in labels {
            for b in labels {
                for c in labels {
                    names.push(format!("{a}.{b}.{c}"));
                    names.push(format!("{a}{b}.{c}"));
                    names.push(format!("{a}{b}{c}"));
                }
            }
        }
        names.extend(["127.0.0.1", "0.0.0.1", "é.gg", "xé.gg"].map(String::from));
        for host in &names {
            let url = GatewayUrl {
                secure: true,
                host: host.clone(),
                port: None,
            };
            assert_eq!(
                url.default_domain(),
                reference_default_domain(host),
                "{host}"
            );
            for domain in names.iter().step_by(7) {
                assert_eq!(
                    host_in_domain(host, domain),
                    reference_in_domain(host, domain),
                    "{host} in {domain}"
                );
            }
        }
    }

    #[test]
    fn the_byte_tables_match_the_ascii_predicates() {
        for b in 0..=u8::MAX {
            let class = CLASS[usize::from(b)];
            assert_eq!(
                class & FORBIDDEN_BYTE != 0,
                b.is_ascii_whitespace() || b.is_ascii_control(),
                "{b}"
            );
            assert_eq!(class & NON_ASCII_BYTE != 0, !b.is_ascii(), "{b}");
            assert_eq!(
                class & USER_INFO_BYTE != 0,
                matches!(b, b'@' | b'\\'),
                "{b}"
            );
            assert_eq!(
                class & NOT_HOST_BYTE == 0,
                b.is_ascii_alphanumeric() || b == b'.' || b == b'-',
                "{b}"
            );
            assert_eq!(class & DOT_BYTE != 0, b == b'.', "{b}");
            assert_eq!(class & COLON_BYTE != 0, b == b':', "{b}");
            assert_eq!(
                class & AUTHORITY_END_BYTE != 0,
                matches!(b, b'/' | b'?' | b'#'),
                "{b}"
            );
            assert_eq!(COLON[usize::from(b)], b == b':', "{b}");
            assert_eq!(DOT[usize::from(b)], b == b'.', "{b}");
            assert_eq!(LOWER[usize::from(b)], b.to_ascii_lowercase(), "{b}");
            assert_eq!(
                AUTHORITY_END[usize::from(b)],
                matches!(b, b'/' | b'?' | b'#'),
                "{b}"
            );
        }
    }

    #[test]
    fn parsing_never_panics_on_odd_input() {
        for url in [
            "",
            "ws",
            "ws:/",
            "wss://[",
            "wss://[::1",
            "wss://[zz]",
            "wss://é.gg",
            "wss://h:",
        ] {
            assert!(GatewayUrl::parse(url).is_err(), "{url}");
        }
        assert_eq!(GatewayUrl::parse("ws://[::1]:80").unwrap().host, "[::1]");
    }
}
