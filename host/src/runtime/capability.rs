//! What a plugin call may do: the capabilities its manifest declares,
//! intersected with what the user granted, with option placeholders filled in.
//! Every host call is checked here and nowhere else.

use std::collections::BTreeMap;

use keyhelper_core::capabilities::Capabilities;

/// The effective capabilities of one plugin call, with option placeholders in
/// URL patterns already filled in.
#[derive(Debug, Clone)]
pub struct CapabilityGrant {
    allowed: Capabilities,
}

impl CapabilityGrant {
    /// The grant for a call: `declared ∩ granted`, with `{option}` placeholders
    /// in URL patterns replaced by the credential's `options`.
    pub fn new(declared: &Capabilities, granted: &Capabilities, options: &BTreeMap<String, String>) -> Self {
        let mut allowed = declared.intersect(granted);
        allowed.http = allowed
            .http
            .iter()
            .filter_map(|pattern| fill_placeholders(pattern, options))
            .map(|pattern| normalised(&pattern).unwrap_or(pattern))
            .collect();
        Self { allowed }
    }

    /// Whether `program args…` may run.
    pub fn check_exec(&self, program: &str, args: &[String]) -> Result<(), String> {
        let rules: Vec<_> = self.allowed.exec.iter().filter(|e| e.command == program).collect();
        if rules.is_empty() {
            return Err(format!("running `{program}` is not a granted capability"));
        }
        if rules.iter().any(|rule| args_match(&rule.args, args)) {
            Ok(())
        } else {
            Err(format!(
                "running `{program}` with arguments `{}` is not granted (allowed: {})",
                args.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
                rules
                    .iter()
                    .map(|r| format!("`{} {}`", r.command, r.args.join(" ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// Whether the environment variable `name` may be read or passed to a program.
    pub fn check_env(&self, name: &str) -> Result<(), String> {
        if self.allowed.env.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(format!("reading environment variable {name} is not a granted capability"))
        }
    }

    /// Names of the environment variables programs may inherit.
    pub fn env_names(&self) -> &[String] {
        &self.allowed.env
    }

    /// Whether a request to `url` may be sent; if so, the URL to send: the
    /// normalised form that was checked (dot segments, `%2e`, default ports,
    /// letter case and a trailing dot of the host resolved), so what is
    /// checked is exactly what is requested.
    pub fn check_url(&self, url: &str) -> Result<String, String> {
        let denied = || format!("requesting {url} is not a granted capability");
        let url = normalised(url).ok_or_else(denied)?;
        if self.allowed.http.iter().any(|pattern| url_matches(pattern, &url)) {
            Ok(url)
        } else {
            Err(denied())
        }
    }

    /// Whether a plugin may set the request header `name`: not those that
    /// decide where a request goes or how it is framed.
    pub fn check_header(&self, name: &str) -> Result<(), String> {
        const RESERVED: [&str; 5] = ["host", "content-length", "transfer-encoding", "connection", "upgrade"];
        if RESERVED.iter().any(|reserved| name.trim().eq_ignore_ascii_case(reserved)) {
            Err(format!("setting the {name} header is not allowed (the host sets it from the granted URL)"))
        } else {
            Ok(())
        }
    }

    /// Whether the plugin may read its provider's stored secrets.
    pub fn check_stored_secrets(&self) -> Result<(), String> {
        if self.allowed.stored_secrets {
            Ok(())
        } else {
            Err("reading stored secrets is not a granted capability".to_string())
        }
    }
}

fn args_match(pattern: &[String], args: &[String]) -> bool {
    match pattern.split_first() {
        None => args.is_empty(),
        Some((first, _)) if first == "**" => true,
        Some((first, rest)) => match args.split_first() {
            Some((arg, args_rest)) => (first == "*" || first == arg) && args_match(rest, args_rest),
            None => false,
        },
    }
}

/// Replaces `{name}` with the option's value (without a trailing `/`). A pattern
/// naming an option the credential does not set allows nothing.
fn fill_placeholders(pattern: &str, options: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        out.push_str(options.get(&rest[start + 1..end])?.trim_end_matches('/'));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `url` parsed and serialised again, if it is plain http(s) without
/// userinfo: the form the request is checked and sent in.
fn normalised(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return None;
    }
    let host = parsed.host_str()?.to_string();
    if let Some(bare) = host.strip_suffix('.') {
        parsed.set_host(Some(bare)).ok()?;
    }
    parsed.set_fragment(None);
    Some(parsed.to_string())
}

/// Glob match where `*` matches any run of characters, but the scheme and host
/// part of the pattern (everything before its first `*`) must match literally
/// and end at a path boundary.
fn url_matches(pattern: &str, url: &str) -> bool {
    let literal_prefix = pattern.split('*').next().unwrap_or_default();
    let after_scheme = literal_prefix.split_once("://").map_or("", |(_, r)| r);
    if !after_scheme.contains('/') && pattern.contains('*') {
        // `https://host*` would also match `https://host.evil.com`.
        return false;
    }
    glob(pattern.as_bytes(), url.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.split_first().is_some_and(|(t, text_rest)| t == c && glob(rest, text_rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhelper_core::capabilities::ExecCapability;

    fn caps() -> Capabilities {
        Capabilities {
            exec: vec![ExecCapability {
                command: "az".into(),
                args: vec!["account".into(), "get-access-token".into(), "**".into()],
            }],
            env: vec!["AZURE_CONFIG_DIR".into()],
            http: vec!["{base_url}/v1/models".into(), "https://example.com/api/*".into()],
            stored_secrets: true,
        }
    }

    fn grant(options: &[(&str, &str)]) -> CapabilityGrant {
        let options = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CapabilityGrant::new(&caps(), &caps(), &options)
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exec_needs_the_program_and_its_argument_pattern() {
        let g = grant(&[]);
        assert!(g.check_exec("az", &args(&["account", "get-access-token", "--scope", "x"])).is_ok());
        assert!(g.check_exec("az", &args(&["account", "get-access-token"])).is_ok());
        assert!(g.check_exec("az", &args(&["ad", "sp", "create"])).is_err());
        assert!(g.check_exec("az", &args(&["account"])).is_err());
        assert!(g.check_exec("curl", &args(&["account", "get-access-token"])).is_err());
    }

    #[test]
    fn single_star_matches_exactly_one_argument() {
        assert!(args_match(&args(&["read", "*"]), &args(&["read", "op://a/b/c"])));
        assert!(!args_match(&args(&["read", "*"]), &args(&["read"])));
        assert!(!args_match(&args(&["read", "*"]), &args(&["read", "a", "b"])));
    }

    #[test]
    fn env_is_by_exact_name() {
        let g = grant(&[]);
        assert!(g.check_env("AZURE_CONFIG_DIR").is_ok());
        assert!(g.check_env("AWS_SECRET_ACCESS_KEY").is_err());
    }

    #[test]
    fn url_patterns_fill_options_and_keep_the_host() {
        let g = grant(&[("base_url", "http://127.0.0.1:8080/")]);
        assert!(g.check_url("http://127.0.0.1:8080/v1/models").is_ok());
        assert!(g.check_url("http://127.0.0.1:8080/v1/models/x").is_err());
        assert!(g.check_url("https://example.com/api/v1?x=1").is_ok());
        assert!(g.check_url("https://example.com.evil.net/api/").is_err());
        assert!(g.check_url("https://example.com@evil.net/api/x").is_err());
        assert!(g.check_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn urls_are_checked_as_they_will_be_requested() {
        let g = grant(&[]);
        for sneaky in [
            "https://example.com/api/../admin",
            "https://example.com/api/%2e%2e/admin",
            "https://example.com/api/.%2E/admin",
            "https://user:pw@example.com/api/x",
            "https://example.com\\@evil.net/api/x",
            "https://example.com:8443/api/x",
        ] {
            assert!(g.check_url(sneaky).is_err(), "{sneaky}");
        }
        for (equivalent, sent) in [
            ("https://EXAMPLE.com/api/x", "https://example.com/api/x"),
            ("https://example.com:443/api/x", "https://example.com/api/x"),
            ("https://example.com./api/./x#frag", "https://example.com/api/x"),
        ] {
            assert_eq!(g.check_url(equivalent).as_deref(), Ok(sent), "{equivalent}");
        }
        let v6 = CapabilityGrant::new(
            &Capabilities { http: vec!["http://[::1]:8080/v1/*".into()], ..caps() },
            &Capabilities { http: vec!["http://[::1]:8080/v1/*".into()], ..caps() },
            &BTreeMap::new(),
        );
        assert!(v6.check_url("http://[0:0::1]:8080/v1/models").is_ok());
        assert!(v6.check_url("http://[::2]:8080/v1/models").is_err());
    }

    #[test]
    fn headers_that_steer_the_request_are_the_hosts() {
        let g = grant(&[]);
        for name in ["Host", "host", "Content-Length", "Transfer-Encoding"] {
            assert!(g.check_header(name).is_err(), "{name}");
        }
        assert!(g.check_header("Authorization").is_ok());
    }

    #[test]
    fn a_pattern_with_an_unset_option_allows_nothing() {
        let g = grant(&[]);
        assert!(g.check_url("/v1/models").is_err());
    }

    #[test]
    fn a_wildcard_host_is_never_allowed() {
        assert!(!url_matches("https://api.openai.com*", "https://api.openai.com.evil.net/"));
    }
}
